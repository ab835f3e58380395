import numpy as np


def nearest_tokens(model, k=5, prompt=None):
    """The vocabulary tokens closest to each prompt vector (cosine similarity).

    The paper's interpretability analysis: learned prompt vectors often sit
    near the task's label words or domain vocabulary.

    Args:
        model: a `keras_prompt.PromptedT5Seq2SeqLM`.
        k: number of neighbours per prompt row.
        prompt: optional `[prompt_length, hidden_dim]` array to analyse
            instead of the model's own prompt (e.g. from a prompt file).

    Returns:
        A list with one entry per prompt row, each a list of `k`
        `(token_id, token, similarity)` tuples sorted by decreasing
        similarity. `token` is the tokenizer's piece, or `None` without a
        preprocessor.

    Example:
    ```python
    for row, neighbours in enumerate(keras_prompt.nearest_tokens(model, k=3)):
        print(row, [token for _, token, _ in neighbours])
    ```
    """
    embeddings = np.asarray(
        model.backbone.token_embedding.embeddings.numpy(), dtype="float32"
    )
    vocabulary_size = embeddings.shape[0]
    if not 1 <= k <= vocabulary_size:
        raise ValueError(
            f"`k` must be between 1 and the vocabulary size {vocabulary_size}; "
            f"got {k}."
        )
    prompt = model.get_prompt() if prompt is None else np.asarray(prompt, "float32")
    if prompt.ndim != 2 or prompt.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"The prompt must be [prompt_length, {embeddings.shape[1]}]; got "
            f"{prompt.shape}."
        )
    tiny = np.finfo("float32").tiny
    unit_embeddings = embeddings / np.maximum(
        np.linalg.norm(embeddings, axis=1, keepdims=True), tiny
    )
    unit_prompt = prompt / np.maximum(
        np.linalg.norm(prompt, axis=1, keepdims=True), tiny
    )
    similarity = unit_prompt @ unit_embeddings.T
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    tokenizer = model.preprocessor.tokenizer if model.preprocessor else None
    return [
        [
            (
                int(token_id),
                tokenizer.id_to_token(int(token_id)) if tokenizer else None,
                float(similarity[row, token_id]),
            )
            for token_id in top[row]
        ]
        for row in range(prompt.shape[0])
    ]
