"""Stage `finetune`: the base encoder fine-tuned as a sequence classifier with `transformers.Trainer`."""
