"""Render hooks: what a study's table needs beyond the engine's (a paper's figure beside ours, a control's overrides
derived from the trained runs). A hook module may define ``extra_lines(study, result) -> list[str]`` and
``arm_overrides(study, arm, seed, trained, recorded_cells) -> list[str]``."""
