"""Facts about an N-frame input window shared by models, datasets and the training loop (no model imports)."""


def reference_index(sequence_length: int) -> int:
    """0-based index of the centre (reference) frame: input3 of 5, input4 of 7."""
    return sequence_length // 2
