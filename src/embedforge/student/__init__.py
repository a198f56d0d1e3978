"""The small task model to ship: a consumer on a word matrix, distilled from the fine-tuned transformer.

`teacher` caches the transformer's logits, `train` trains a student, `classifier` ships and loads it
(models/student/), `speed` times it beside the transformer, `run` is the `student` stage.
"""
