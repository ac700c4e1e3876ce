"""MkDocs hook: the params reference page is generated from the JSON Schema, params.yaml and
the stage table (jtm/config/reference.py) at every build."""

from pathlib import Path

from jtm.config.reference import reference
from jtm.stages import STAGES

PLACEHOLDER = "<!-- params reference -->"


def on_page_markdown(markdown, page, config, files, **kwargs):
    if PLACEHOLDER not in markdown:
        return markdown
    reruns: dict[str, list[str]] = {}
    for stage in STAGES.values():
        for key in stage.params:
            reruns.setdefault(key, []).append(stage.name)
    params = Path(config["config_file_path"]).parent / "params.yaml"
    return markdown.replace(PLACEHOLDER, reference(params, reruns))
