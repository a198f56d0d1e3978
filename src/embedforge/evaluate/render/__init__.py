"""The renderers: report.md, neighbours.md, the plot tables drawn from the metrics, and the images.

They read the files the stage wrote (through `embedforge.evaluate.files`) and nothing the computation
holds, so any run's files can be rendered again; they import only `files`, `core` and each other.
"""
