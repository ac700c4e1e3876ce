"""The downstream study: what each representation is worth on MusicNet's labelled tasks.

design (methods, budgets, cells) -> labels (task targets) and subsets (label fractions) ->
probe / end_to_end (the models) -> metrics (scikit-learn, mir_eval) -> cell (one job: stages
`probe` and `end_to_end`) -> collect (stage `downstream`). A change to how budgets or seeds
work touches this folder only.
"""
