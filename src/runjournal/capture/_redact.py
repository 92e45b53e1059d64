"""Secret redaction: keep credentials out of the store, and never touch anything else.

Two tests decide, and both are cheap:

- **by name**: a key names a credential when one of its words (names are split
  on non-alphanumerics and camelCase: ``hfToken`` -> ``hf token``) is a secret
  word (``secret``, ``password``, ``auth``, ...), when two or three consecutive
  words spell a secret compound (``api_key``, ``access_key``, ``client_secret``),
  or when its *last* word is ``token`` and is not tokenizer vocabulary
  (``hf_token`` and ``GITHUB_TOKEN`` are secret; ``pad_token``,
  ``token_type_ids`` and ``max_tokens`` are not). Whole words only: ``author``,
  ``tokenizer``, ``key_size``, ``passage`` and ``secretary`` are ordinary names.
- **by value**: credentials inside URLs (``https://user:tok@host`` ->
  ``https://<redacted>@host``), well-known token formats (``ghp_...``,
  ``hf_...``, ``sk-...``, ``AKIA...``; each with a minimum length, and the
  generic ones must look random), ``Bearer`` headers and ``password=...``
  pairs inside a value.

A secret-named value becomes :data:`REDACTED` as a whole; a secret found
inside a value is cut out and the rest kept. Booleans and None are never
redacted: they cannot hold a credential, and ``use_auth=True`` is worth keeping.

Example:
    >>> from runjournal.capture import redact_params
    >>> redact_params({"hf_token": "abc", "max_tokens": 512, "tokenizer": "bpe"})
    {'hf_token': '<redacted>', 'max_tokens': 512, 'tokenizer': 'bpe'}
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runjournal.format import is_tagged

__all__ = [
    "REDACTED",
    "SECRET_WORDS",
    "is_secret_name",
    "normalize_words",
    "redact_argv",
    "redact_params",
    "redact_text",
    "redact_url",
    "redact_value",
]

REDACTED = "<redacted>"
"""What a secret is replaced by."""

SECRET_WORDS = frozenset(
    {
        # single words
        "auth",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "passphrase",
        "passwd",
        "password",
        "passwords",
        "pwd",
        "secret",
        "secrets",
        "webhook",
        # compounds, matched on two or three consecutive words joined: api_key, apiKey
        "accesskey",
        "accountkey",
        "apikey",
        "apitoken",
        "appkey",
        "clientsecret",
        "encryptionkey",
        "gpgkey",
        "licensekey",
        "masterkey",
        "privatekey",
        "secretkey",
        "sessionkey",
        "signingkey",
        "sshkey",
    }
)
"""Words (and joined compounds) whose presence in a key makes it secret."""

_SUFFIXES = ("apikey", "passphrase", "passwd", "password", "secret", "token")
"""A single word ending in one of these is secret too: ``PGPASSWORD``, ``authtoken``."""

_TOKEN = "token"
_TOKEN_VOCABULARY = frozenset(
    {
        "additional",
        "audio",
        "bos",
        "boi",
        "cls",
        "decoder",
        "default",
        "end",
        "eoi",
        "eos",
        "extra",
        "first",
        "image",
        "last",
        "mask",
        "next",
        "pad",
        "prev",
        "sentinel",
        "sep",
        "special",
        "start",
        "unk",
        "video",
        "vision",
    }
)
"""Words before a final ``token`` that make it tokenizer vocabulary, not a credential."""

_MAX_PARTS = 3
"""Compounds are matched on up to this many consecutive words (more if a user word has more)."""

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

_URL_USERINFO = re.compile(r"\b(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#@\s]+)@")
_SSH_SCHEMES = frozenset({"ssh://", "git+ssh://", "ssh+git://"})

# Well-known credential formats. Fixed-shape ones are matched exactly; the
# generic ones (hf_, sk-, glpat-, slack) must also look random (see _looks_random).
_TOKEN_PATTERN = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"(?P<exact>gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{40,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"
    r"|AIza[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_\-])"
    r"|npm_[A-Za-z0-9]{36}"
    r"|pypi-[A-Za-z0-9_\-]{50,}"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})"
    r"|(?P<random>(?:hf_|sk-|glpat-|xox[abposr]-)[A-Za-z0-9_\-]{20,})"
    r")"
)
_SCHEME_TOKEN = re.compile(
    r"\b(?P<scheme>[Bb]earer|[Bb]asic|[Tt]oken)\s+(?P<token>[A-Za-z0-9._~+/=\-]{12,})"
)
_PAIR_IN_VALUE = re.compile(
    r"(?i)(?:\b(?P<name>password|passwd|pwd|secret|token|access_token|api_key|apikey"
    r"|accountkey|sharedaccesskey)|(?<=[?&])(?P<query>sig))=(?P<value>[^;&\s\"']+)"
)
_ASSIGNMENT = re.compile(
    r"(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)"
    r"(?P<sep>[\"']?\]?\s*(?:=(?!=)|:(?!//))\s*)"
    r"(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s\"',;)}\]]+)"
)
_OPTION = re.compile(r"(?P<dashes>--?|\+\+?|~)?(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)")


def normalize_words(words: Iterable[str]) -> frozenset[str]:
    """User-given secret words in the form the matcher compares: lowercase, joined.

    Example:
        >>> sorted(normalize_words(["pin", "Session_ID"]))
        ['pin', 'sessionid']
    """
    return frozenset("".join(_split(word)) for word in words if _split(word))


def _split(name: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(name)]


@functools.lru_cache(maxsize=8192)
def is_secret_name(name: str, extra: frozenset[str] = frozenset()) -> bool:
    """Whether a key (a param, tag, option or environment variable name) names a credential.

    Args:
        name: The key.
        extra: More secret words, as :func:`normalize_words` gives them.

    Example:
        >>> [is_secret_name(n) for n in ("HF_TOKEN", "apiKey", "db_password", "auth_header")]
        [True, True, True, True]
        >>> [is_secret_name(n) for n in ("max_tokens", "tokenizer", "key_size", "author")]
        [False, False, False, False]
        >>> is_secret_name("pad_token"), is_secret_name("pin", normalize_words(["pin"]))
        (False, True)
    """
    words = _split(name)
    if not words:
        return False
    vocabulary = SECRET_WORDS | extra if extra else SECRET_WORDS
    if words[-1] == _TOKEN and (len(words) == 1 or words[-2] not in _TOKEN_VOCABULARY):
        return True
    if any(word.endswith(_SUFFIXES) and word != _TOKEN for word in words):
        return True
    longest = max(_MAX_PARTS, *(len(_split(word)) for word in extra)) if extra else _MAX_PARTS
    for start in range(len(words)):
        joined = ""
        for word in words[start : start + longest]:
            joined += word
            if joined in vocabulary:
                return True
    return False


def redact_url(url: str) -> str:
    """A URL without the credentials in its userinfo (the user of an ``ssh://`` URL is kept).

    Example:
        >>> redact_url("https://ada:s3cr3t@example.org/r.git")
        'https://<redacted>@example.org/r.git'
        >>> redact_url("ssh://git@example.org/r.git")
        'ssh://git@example.org/r.git'
    """
    return _URL_USERINFO.sub(_userinfo, url) if "@" in url else url


def _userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match["scheme"], match["userinfo"]
    if scheme.lower() in _SSH_SCHEMES and ":" not in userinfo:
        return match[0]  # an ssh login name is not a credential
    return f"{scheme}{REDACTED}@"


def redact_value(text: str) -> str:
    """A string with the credentials it *contains* cut out (URLs, known tokens, pairs).

    Nothing is judged by a name here, so an ordinary value is returned as it is.

    Example:
        >>> redact_value("see https://u:p@host/x and ghp_" + "a1B2" * 9)
        'see https://<redacted>@host/x and <redacted>'
        >>> redact_value("sk-learn is a package; hf_hub_download is a function")
        'sk-learn is a package; hf_hub_download is a function'
    """
    if "@" in text:
        text = _URL_USERINFO.sub(_userinfo, text)
    text = _TOKEN_PATTERN.sub(_token, text)
    if " " in text:
        text = _SCHEME_TOKEN.sub(_scheme_token, text)
    if "=" in text:
        text = _PAIR_IN_VALUE.sub(_pair, text)
    return text


def _token(match: re.Match[str]) -> str:
    if match["random"] is not None and not _looks_random(match["random"]):
        return match[0]
    return REDACTED


def _scheme_token(match: re.Match[str]) -> str:
    if not _looks_random(match["token"]):
        return match[0]  # "Basic augmentation" is prose, not a header
    return f"{match['scheme']} {REDACTED}"


def _pair(match: re.Match[str]) -> str:
    return f"{match['name'] or match['query']}={REDACTED}"


def _looks_random(token: str) -> bool:
    """Generated tokens mix cases (or letters and many digits); names and slugs do not."""
    body = token.split("_", 1)[-1] if token.startswith("hf_") else token.split("-", 1)[-1]
    has_upper = any(c.isupper() for c in body)
    has_lower = any(c.islower() for c in body)
    digits = sum(c.isdigit() for c in body)
    return (has_upper and has_lower) or (digits >= 4 and (has_upper or has_lower))


def redact_text(text: str, extra: frozenset[str] = frozenset()) -> str:
    r"""Free text (code, a command line) with secrets cut out, by value and by assignment.

    Besides :func:`redact_value`, the value of an assignment to a secret name
    (``password = "x"``, ``api_key: x``, ``{"token": "x"}``) is redacted.

    Example:
        >>> redact_text('login(token="abc123")\nmax_tokens = 512')
        'login(token="<redacted>")\nmax_tokens = 512'
    """
    text = redact_value(text)
    if "=" not in text and ":" not in text:
        return text

    def assignment(match: re.Match[str]) -> str:
        value = match["value"]
        if REDACTED in value or not is_secret_name(match["name"], extra):
            return match[0]
        quote = value[0] if value[0] in "\"'" and len(value) > 1 else ""
        return f"{match['name']}{match['sep']}{quote}{REDACTED}{quote}"

    return _ASSIGNMENT.sub(assignment, text)


def redact_argv(argv: Sequence[str], extra: frozenset[str] = frozenset()) -> list[str]:
    """A command line with the values of secret options redacted.

    ``--api-key=X``, ``--token X`` and ``db.password=X`` (Hydra-style
    overrides) lose ``X``; every argument also passes :func:`redact_value`.

    Example:
        >>> redact_argv(["train.py", "--api-key=XYZ", "--token", "abc", "--max-tokens", "5"])
        ['train.py', '--api-key=<redacted>', '--token', '<redacted>', '--max-tokens', '5']
    """
    result: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("--"):
            result.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        option = _OPTION.match(arg)
        if option is not None and is_secret_name(option["name"], extra):
            rest = arg[option.end() :]
            if rest.startswith("="):
                result.append(f"{arg[: option.end()]}={REDACTED}")
                continue
            hide_next = not rest and option["dashes"] in ("-", "--")
        result.append(arg if hide_next else redact_text(arg, extra))
    return result


def redact_params(params: Mapping[str, Any], extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Params (or tags) in stored form with secret values redacted; a new dict.

    The value of a secret-named key becomes ``"<redacted>"`` (whole lists
    included), unless it is a bool or None; a nested mapping under any key is
    walked with its own keys. Other strings pass :func:`redact_value`.
    Everything else is kept exactly, so an ordinary param is never altered.

    Example:
        >>> redact_params({"db": {"password": "x", "host": "h"}, "use_auth": True})
        {'db': {'password': '<redacted>', 'host': 'h'}, 'use_auth': True}
    """
    return {key: _redact_leaf(key, value, extra) for key, value in params.items()}


def _redact_leaf(key: str, value: Any, extra: frozenset[str]) -> Any:
    if isinstance(value, dict) and not is_tagged(value):
        return redact_params(value, extra)
    if value is None or isinstance(value, bool):
        return value
    if is_secret_name(key, extra):
        return REDACTED
    if isinstance(value, str):
        return redact_value(value)
    if isinstance(value, list):
        return [_redact_leaf("", item, extra) for item in value]
    return value
