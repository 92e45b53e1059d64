"""Secret redaction: credentials never reach the store, and ordinary names are never touched."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import runjournal
from runjournal.capture import (
    REDACTED,
    is_secret_name,
    redact_argv,
    redact_params,
    redact_text,
    redact_url,
    redact_value,
)
from runjournal.capture._redact import SECRET_WORDS, normalize_words

SECRET_NAMES = [
    "hf_token",
    "HF_TOKEN",
    "token",
    "GITHUB_TOKEN",
    "apiKey",
    "api_key",
    "OPENAI_API_KEY",
    "db_password",
    "PGPASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "auth_header",
    "Authorization",
    "client_secret",
    "private_key",
    "secretKey",
    "passwd",
    "my.credentials",
    "ngrok_authtoken",
    "slack_webhook_url",
]
ORDINARY_NAMES = [
    "max_tokens",
    "max_new_tokens",
    "tokenizer",
    "tokenizer_name",
    "TOKENIZERS_PARALLELISM",
    "pad_token",
    "eos_token_id",
    "token_type_ids",
    "key_size",
    "num_keys",
    "author",
    "authors",
    "passage",
    "secretary",
    "keyboard",
    "monkey",
    "lr",
    "batch_size",
]
# Words that are not secret and never join into a secret compound.
PLAIN_WORDS = [
    "max",
    "tokens",
    "tokenizer",
    "key",
    "size",
    "author",
    "num",
    "keys",
    "passage",
    "secretary",
    "model",
    "lr",
    "batch",
    "layer",
    "hidden",
    "dim",
    "seed",
    "data",
    "path",
    "vocab",
    "eos",
    "pad",
    "warmup",
    "steps",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_names_of_credentials_are_secret(name: str) -> None:
    """A name holding a credential word (in any case or separator style) is secret."""
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ORDINARY_NAMES)
def test_names_that_merely_contain_the_letters_are_not_secret(name: str) -> None:
    """Whole words only: max_tokens, tokenizer, key_size, author and the like stay ordinary."""
    assert not is_secret_name(name)


separators = st.sampled_from(["_", "-", ".", "/", " ", "__"])


def _join(words: list[str], separator: str, camel: bool) -> str:
    if camel:
        return words[0] + "".join(word.capitalize() for word in words[1:])
    return separator.join(words)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(PLAIN_WORDS), min_size=1, max_size=5),
    separators,
    st.booleans(),
    st.booleans(),
)
def test_names_built_from_ordinary_words_are_never_secret(
    words: list[str], separator: str, camel: bool, upper: bool
) -> None:
    """Any name made of non-secret words, in any style, is never redacted."""
    name = _join(words, separator, camel)
    assert not is_secret_name(name.upper() if upper else name)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(PLAIN_WORDS), max_size=3),
    st.sampled_from(sorted(word for word in SECRET_WORDS if word.isalpha() and len(word) > 3)),
    st.lists(st.sampled_from(PLAIN_WORDS), max_size=3),
    separators,
    st.booleans(),
)
def test_names_holding_a_secret_word_as_a_whole_word_are_always_secret(
    before: list[str], secret: str, after: list[str], separator: str, upper: bool
) -> None:
    """A secret word anywhere, as a whole word between any separators, makes the name secret."""
    name = separator.join([*before, secret, *after])
    assert is_secret_name(name.upper() if upper else name)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PLAIN_WORDS), max_size=3), separators)
def test_token_as_the_last_word_is_secret_unless_it_is_tokenizer_vocabulary(
    before: list[str], separator: str
) -> None:
    """``*_token`` is a credential; ``pad_token`` and ``eos_token`` are tokenizer vocabulary."""
    name = separator.join([*before, "token"])
    vocabulary = bool(before) and before[-1] in ("pad", "eos")
    assert is_secret_name(name) is not vocabulary


param_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(PLAIN_WORDS), children, max_size=3)
    ),
    max_leaves=10,
)
ordinary_params = st.dictionaries(
    st.lists(st.sampled_from(PLAIN_WORDS), min_size=1, max_size=3).map("_".join),
    param_values,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(ordinary_params)
def test_ordinary_params_pass_the_redaction_unchanged(params: dict[str, object]) -> None:
    """Params with ordinary names and no credential-shaped value come back exactly."""
    assert repr(redact_params(params)) == repr(params)  # repr: 1, 1.0 and True differ


def test_secret_params_and_tags_are_stored_redacted_and_ordinary_ones_exactly() -> None:
    """start(params, tags), log_params and tag store secrets as <redacted>, the rest untouched."""
    ordinary = {"max_tokens": 512, "tokenizer": "bpe", "key_size": 64, "author": "ada"}
    secret = {"api_key": "sk-live-123", "db": {"password": "hunter2", "host": "db1"}}
    with runjournal.start(params={**ordinary, **secret}, tags={"token": "t0k"}) as run:
        run.log_params({"hf_token": "hf_x", "pin": 1234, "use_auth": True})
        run.tag(auth_header="Bearer abc", stage="pretrain")
    record = runjournal.Store().run(run.id)
    assert record.params == {
        **ordinary,
        "api_key": REDACTED,
        "db": {"password": REDACTED, "host": "db1"},
        "hf_token": REDACTED,
        "pin": 1234,  # not a secret word by default
        "use_auth": True,  # a bool holds no credential
    }
    assert record.tags == {"token": REDACTED, "auth_header": REDACTED, "stage": "pretrain"}


def test_users_extend_the_secret_words_for_params(monkeypatch: pytest.MonkeyPatch) -> None:
    """capture={"secret_words": [...]} and RUNJOURNAL_SECRET_WORDS add words, params included."""
    monkeypatch.setenv("RUNJOURNAL_SECRET_WORDS", "otp, ")
    with runjournal.start(capture={"secret_words": ["pin"], "git": False}) as run:
        run.log_params({"pin": 1234, "otp": "998877", "pinned": True, "spin": 3})
    params = runjournal.Store().run(run.id).params
    assert params == {"pin": REDACTED, "otp": REDACTED, "pinned": True, "spin": 3}


def test_urls_lose_their_credentials_and_keep_the_rest() -> None:
    """Userinfo is cut out of http(s) URLs; an ssh login name is kept."""
    assert redact_url("https://user:s3cr3tT0k3n@host/r.git") == "https://<redacted>@host/r.git"
    assert redact_url("https://ghp_abc@github.com/a/b") == "https://<redacted>@github.com/a/b"
    assert redact_url("ssh://git@host/r.git") == "ssh://git@host/r.git"
    assert redact_url("git@github.com:ada/proj.git") == "git@github.com:ada/proj.git"
    assert redact_value("postgres://u:p@db:5432/x?sslmode=require") == (
        "postgres://<redacted>@db:5432/x?sslmode=require"
    )


@pytest.mark.parametrize(
    "token",
    [
        "ghp_" + "a1B2c3D4e5" * 4,
        "github_pat_" + "11ABCDEFG0" * 5,
        "glpat-" + "xY12zW34vU56tS78rQ90",
        "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
        "sk-" + "proj-Ab12Cd34Ef56Gh78Ij90Kl",
        "xoxb-" + "1234567890-AbCdEfGhIjKl",
        "AKIAIOSFODNN7EXAMPLE",
        "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ],
)
def test_known_token_formats_are_redacted_wherever_they_appear(token: str) -> None:
    """A value that is, or holds, a well-known token format loses it."""
    assert redact_value(token) == REDACTED
    assert redact_value(f"export KEY={token} # set") == f"export KEY={REDACTED} # set"


@pytest.mark.parametrize(
    "text",
    [
        "sk-learn",
        "hf_hub_download",
        "hf_datasets_cache_directory_name",
        "sk-learn-classifier-ensemble-v2-final",
        "AKIA",
        "Basic augmentation pipeline",
        "Bearer of bad news",
        "token budget = 512",
        "sha256:3a7bd3e2360a3d29eea436fcfb7e44c7",
        "/home/ada/proj/.venv/bin/python",
    ],
)
def test_ordinary_values_that_resemble_tokens_are_kept(text: str) -> None:
    """Token prefixes need their minimum length and a random look: slugs and prose stay."""
    assert redact_value(text) == text


def test_headers_and_pairs_inside_values_are_redacted() -> None:
    """Bearer/Basic credentials and password=... pairs are cut out of longer strings."""
    assert redact_value("Authorization: Bearer abcDEF123456xyz") == (
        f"Authorization: Bearer {REDACTED}"
    )
    assert redact_value("Server=db;User Id=ada;Password=hunter2;") == (
        f"Server=db;User Id=ada;Password={REDACTED};"
    )
    assert redact_value("https://h/x?sig=abc123&se=2026") == f"https://h/x?sig={REDACTED}&se=2026"


def test_command_lines_lose_the_values_of_secret_options() -> None:
    """--api-key=X, --token X and Hydra-style db.password=X are redacted; other options stay."""
    argv = [
        "train.py",
        "--api-key=XYZ",
        "--token",
        "abc",
        "--max-tokens",
        "5",
        "db.password=pw",
        "--use-auth",
        "--lr=0.1",
        "--remote=https://u:p@h/r",
    ]
    assert redact_argv(argv) == [
        "train.py",
        f"--api-key={REDACTED}",
        "--token",
        REDACTED,
        "--max-tokens",
        "5",
        f"db.password={REDACTED}",
        "--use-auth",
        "--lr=0.1",
        f"--remote=https://{REDACTED}@h/r",
    ]


def test_code_loses_the_values_assigned_to_secret_names() -> None:
    """In notebook cells, assignments, keyword arguments and dict entries of secrets lose values."""
    code = (
        'api_key = "abc"\n'
        "login(token='t0k')\n"
        'config = {"password": "pw", "max_tokens": 5}\n'
        'os.environ["HF_TOKEN"] = "hf_value"\n'
        "tokenizer = load('bpe')\n"
    )
    assert redact_text(code) == (
        f'api_key = "{REDACTED}"\n'
        f"login(token='{REDACTED}')\n"
        f'config = {{"password": "{REDACTED}", "max_tokens": 5}}\n'
        f'os.environ["HF_TOKEN"] = "{REDACTED}"\n'
        "tokenizer = load('bpe')\n"
    )


def test_user_words_are_normalized_like_names() -> None:
    """Extra words match whole words in any style: "session_id" matches sessionId."""
    words = normalize_words(["session_id"])
    assert is_secret_name("sessionId", words) and is_secret_name("SESSION_ID", words)
    assert not is_secret_name("session", words)
