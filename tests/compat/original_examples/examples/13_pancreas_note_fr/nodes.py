"""Custom nodes of the pancreas note pipeline: a filter, and an upload node overriding execute()."""

from datasets import Dataset
from models import ClassifiedCase, SpanInfo

from chainette import ApplyNode
from chainette.io.writer import RunWriter


def _filter_relevant(case: ClassifiedCase) -> list[ClassifiedCase]:
    """Keep only pancreas and lymphoma cases."""
    return [case] if case.category in ("pancreas", "lymphoma") else []


filter_node = ApplyNode(
    fn=_filter_relevant,
    id="filter",
    name="Filter Other Cases",
    input_model=ClassifiedCase,
    output_model=ClassifiedCase,
)


class UploadNode(ApplyNode):
    """Final node: build clean HF rows and push them to the hub."""

    def __init__(self):
        # Minimal init without fn - we override execute anyway
        self.id = "upload"
        self.name = "Upload to HF"
        self.input_model = SpanInfo  # for inspector
        self.output_model = SpanInfo

    def execute(
        self,
        inputs: list[SpanInfo],
        item_histories: list[dict],
        writer: RunWriter | None = None,
        debug: bool = False,
        batch_size: int = 0,
    ) -> tuple[list[SpanInfo], list[dict]]:
        repo_id = "rntc/clinical-reformulate"
        rows = []
        for span_rec, hist in zip(inputs, item_histories, strict=False):
            clinical_case = getattr(hist.get("classify"), "text", None) or getattr(hist.get("filter"), "text", "")
            clinical_note = getattr(hist.get("note"), "note", "")
            extract_rec = hist.get("extract")
            values = extract_rec.model_dump() if extract_rec is not None else {}
            variables = "\n\n".join(f"{k}: {v}" for k, v in values.items() if v is not None)
            spans = span_rec.model_dump()
            var_locs = [[f"{k}: {v}", spans.get(f"{k}_span")] for k, v in values.items() if v is not None]
            rows.append(
                {
                    "clinical_case": clinical_case,
                    "clinical_note": clinical_note,
                    "variables": variables,
                    "variables_locations": var_locs,
                }
            )
        try:
            Dataset.from_list(rows).push_to_hub(repo_id, split="train")
        except Exception as exc:
            print(f"[WARN] Failed to push to HF Hub: {exc}")
        new_histories = []
        for hist, row in zip(item_histories, rows, strict=False):
            h = hist.copy()
            h[self.id] = row
            new_histories.append(h)
        if writer is not None:
            writer.add_node_to_graph({"id": self.id, "name": self.name, "type": "Apply"})
            writer.write_step(self.id, rows)
        return inputs, new_histories


upload_node = UploadNode()
