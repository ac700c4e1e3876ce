"""The downstream study: what each representation is worth on MusicNet's labelled tasks.

design (methods, budgets, cells) -> labels (task targets) and subsets (label budgets) ->
probe / end_to_end (the models) -> metrics (scikit-learn, mir_eval) -> inputs (what a cell
reads), model (one model trained, selected, scored), cell (one job: stages `probe` and
`end_to_end`) -> bootstrap, compare (intervals, paired comparisons) -> collect (stage
`downstream`). A change to how budgets, seeds or intervals work touches this folder only.
"""
