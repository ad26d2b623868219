"""The pure model: nodes, steps, applies, branches, chains, graphs, validation and templates."""
