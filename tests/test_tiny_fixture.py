from transformers import AutoModel, AutoTokenizer


def test_tiny_model_loads(tiny_model_dir):
    model = AutoModel.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    out = model(**tok(["很好吃"], return_tensors="pt"))
    assert out.last_hidden_state.shape == (1, 5, 32)
