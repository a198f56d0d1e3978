"""The core every stage builds on: params, errors, files, models, encoder, embedding, contracts."""
