"""The study's report: HTML and Markdown from the stages' outputs, with its figures."""
