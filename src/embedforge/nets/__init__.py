"""The small models on a word matrix, what a user puts on top of `nn.Embedding`, shared by `evaluate` (which
scores matrices with them) and `student` (which ships one): `data` (texts as padded row ids), `models` (the
mean probe, Kim's CNN, the BiLSTM) and `training` (their one training loop).
"""
