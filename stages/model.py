"""DVC stage `model`: materialize the pretrained encoder named in params.yaml into models/base/."""

from embedforge.core.models import materialize
from embedforge.core.params import load_params
from embedforge.core.stage import run_stage

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
