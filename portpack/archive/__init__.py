"""portpack's and pixi-pack's archive formats: model, reader, writer, summary."""
