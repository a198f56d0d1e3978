"""DVC stage `model`: materialize the pretrained encoder named in params.yaml into models/base/."""

from embedforge.cli import run_stage
from embedforge.models import materialize
from embedforge.params import load_params

OUT = "models/base"


def main() -> None:
    params = load_params().model
    info = materialize(params.source, OUT)
    print(
        f"model: {info['source']} -> {OUT} ({info['model_type']}, {info['num_hidden_layers']} layers, "
        f"hidden {info['hidden_size']}, {info['parameters']:,} parameters)"
    )


if __name__ == "__main__":
    run_stage(main)
