import pytest

from chainette import Branch, Chain, Graph, JoinBranch, Step, apply
from chainette.core.branch import Parallel
from chainette.errors import ChainValidationError
from tests.core.models import Answer, Question, Translation


def mk(id, inp=Question, out=Answer, prompt="{{text}}"):
    return Step(id, input_model=inp, output_model=out, engine_name="fake", user_prompt=prompt)


def test_connect_topological_order_and_to_items():
    a, b, c = mk("a"), mk("b", Answer, Answer, "{{answer}}"), mk("c", Answer, Answer, "{{answer}}")
    a.connect(b).connect(c)
    g = Graph(roots=[a])
    assert g.topological_order() == ["a", "b", "c"]
    assert [i.id for i in g.to_items()] == ["a", "b", "c"]


def test_fork_in_graph_becomes_parallel_branches():
    a, b, c = mk("a"), mk("b", Answer, Answer, "{{answer}}"), mk("c", Answer, Answer, "{{answer}}")
    a.connect(b, c)
    items = Graph(roots=[a]).to_items()
    assert items[0] is a and isinstance(items[1], Parallel)
    assert [br.id for br in items[1].branches] == ["b", "c"]


def test_cycle_detection_names_the_cycle():
    a, b = mk("a"), mk("b")
    a.connect(b)
    b.connect(a)
    with pytest.raises(ChainValidationError) as exc:
        Graph(roots=[a])
    assert "cycle detected: a -> b -> a" in str(exc.value)


def test_merge_without_join_is_rejected():
    a, b, c = mk("a"), mk("b"), mk("c")
    a.connect(c)
    b.connect(c)
    with pytest.raises(ChainValidationError, match="several predecessors"):
        Graph(roots=[a, b]).to_items()


def test_dsl_sequence_parallel_and_join():
    a = mk("a")
    b = mk("b", Answer, Translation, "{{answer}}")
    c = mk("c", Answer, Translation, "{{answer}}")
    d = mk("d", Answer, Translation, "{{answer}}")
    e = mk("e", Answer, Answer, "{{bj.translated}}")
    pipeline = a >> (b.join("bj") | c | d) >> e
    chain = Chain("dsl", steps=pipeline)
    assert [i.id for i in chain.items] == ["a", "parallel(b,c,d)", "e"]
    group = chain.items[1]
    assert isinstance(group.branches[0], JoinBranch) and group.branches[0].alias == "bj"
    assert len(group.branches) == 3


def test_chain_list_of_branches_is_parallel_and_graph_has_join_edges():
    a = mk("a")
    fr = Branch("fr", [mk("tr_fr", Answer, Translation, "{{answer}}")]).join("fr")
    es = Branch("es", [mk("tr_es", Answer, Translation, "{{answer}}")]).join("es")
    agg = mk("agg", Answer, Answer, "{{fr.translated}} {{es.translated}}")
    chain = Chain("c", steps=[a, [fr, es], agg])
    g = chain.graph.to_dict()
    ids = [n["id"] for n in g["nodes"]]
    assert ids == ["a", "fr", "tr_fr", "es", "tr_es", "agg"]
    edges = {(e["source"], e["target"], e.get("label", "")) for e in g["edges"]}
    assert ("tr_fr", "agg", "join:fr") in edges and ("a", "agg", "") in edges
    step_node = next(n for n in g["nodes"] if n["id"] == "a")
    assert step_node["type"] == "step" and step_node["engine"] == "fake"
    assert step_node["output_schema"]["properties"]["answer"]["type"] == "string"


def test_apply_decorator_and_return_model():
    @apply(id="double")
    def double(x: Answer) -> list[Answer]:
        return [x, x]

    assert double.id == "double" and double.output_model is Answer
