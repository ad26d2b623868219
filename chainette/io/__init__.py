"""Input and output: readers, writers, the run directory's journal and the item cache."""
