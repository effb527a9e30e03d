"""docs/configs.md is generated (qadapt/configdocs.py) from the option models, the option files and the template: the
committed file is what they make now, and every option of every group has its table."""

from qadapt import configdocs
from qadapt.config import SCHEMAS, group_choices
from qadapt.schema import GROUPS


def test_committed_configs_md_is_what_make_docs_writes():
    assert configdocs.OUTPUT.read_text() == configdocs.render(), "docs/configs.md is stale: run `make docs`"


def test_every_option_and_every_key_is_in_a_generated_table():
    text = configdocs.render()
    placed = {m.group(2) for m in configdocs.PLACEHOLDER.finditer(configdocs.TEMPLATE.read_text())}
    tabled = {(g, o) for arg in placed if "/" in arg for g, opts in [arg.split("/")] for o in opts.split(",")}
    for group in GROUPS:
        for option in group_choices(group):
            if option in ("full", "none"):
                continue  # no keys beyond their name
            families = {cls.__name__ for cls in SCHEMAS[group][option].__mro__} & placed  # model=: its family's keys
            assert (group, option) in tabled or families, f"{group}={option} has no table in docs/configs.in.md"
            for key in SCHEMAS[group][option].model_fields:
                assert key == "name" or f"| `{key}" in text, (group, option, key)


def test_a_key_left_out_of_its_yaml_shows_the_models_default():
    table = configdocs.option_table("train", ["default"])
    assert "| `eval_every` | absent: `0` |" in table and "| `trainable` | absent: `adapter` |" in table
