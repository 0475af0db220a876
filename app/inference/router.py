"""Which provider answers which model: the built-in offline model by default, upstreams by configuration.

Why by model name: clients already name a model on every call, so `gpt-*` can go to OpenAI, `claude-*`
to Anthropic and everything else to the offline model without any client-side change.

Configuration (environment first; all optional)
-----------------------------------------------
Shortcuts, one upstream per kind:

    UNDERSTUDY_OPENAI_BASE_URL=https://api.openai.com/v1   # any OpenAI-compatible server, /v1 included
    UNDERSTUDY_OPENAI_API_KEY=sk-...
    UNDERSTUDY_OPENAI_MODELS=gpt-*,o*                       # globs routed there; default "*" (every model)
    UNDERSTUDY_OPENAI_RESPONSES=1                           # it speaks /v1/responses (default: only OpenAI's URL)
    UNDERSTUDY_ANTHROPIC_API_KEY=sk-ant-...                 # routes claude-*
    UNDERSTUDY_ANTHROPIC_BASE_URL=https://api.anthropic.com # optional
    UNDERSTUDY_GEMINI_API_KEY=...                           # routes gemini-*
    UNDERSTUDY_GEMINI_BASE_URL=https://generativelanguage.googleapis.com  # optional
    UNDERSTUDY_UPSTREAM_TIMEOUT=600                         # read timeout, seconds (connect: 10 s)
    UNDERSTUDY_UPSTREAM_MAX_RETRIES=2                       # retries after the first attempt (429, 5xx, network)
    UNDERSTUDY_EXTRA_MODELS=my-model,other-model            # extra ids in GET /v1/models
    UNDERSTUDY_RECORD=cassettes/                            # record every upstream exchange (app/inference/cassettes.py)
    UNDERSTUDY_REPLAY=cassettes/                            # answer upstream requests from recordings, no network
    UNDERSTUDY_REPLAY_MISS=error                            # or "passthrough": a request not recorded goes upstream

The OpenAI shortcut is on when its base URL or its key is set (the base URL defaults to OpenAI's).
The shortcut providers are named "openai", "anthropic" and "gemini".

Or, in the TOML file named by UNDERSTUDY_CONFIG, any number of providers and routes:

    [[providers]]
    name = "local"                   # referenced by routes
    kind = "openai"                  # "openai" (any OpenAI-compatible API) | "anthropic" | "gemini"
    base_url = "http://localhost:11434/v1"
    api_key_env = "LOCAL_KEY"        # or api_key = "..."; omit both for no auth
    timeout = 120                    # optional read timeout, seconds
    max_retries = 1                  # optional retries after the first attempt
    models = ["llama*"]              # optional: shorthand for [[routes]] to this provider
    headers = { "x-team" = "a" }     # optional extra request headers
    responses = true                 # kind "openai" only: the upstream speaks the Responses API, so
                                     # /v1/responses is relayed as it is (default: true for OpenAI's
                                     # own base URL, false elsewhere: translated to chat completions)

    [[routes]]
    model = "gpt-4o-mini"            # an exact id or an fnmatch glob (*, ?, [..]); a list also works
    provider = "offline"             # the built-in offline model is always the provider "offline"

    [[routes]]
    model = "gpt-*"
    provider = "local"

The same tables also fit in the environment as JSON lists: UNDERSTUDY_PROVIDERS='[{"name": "local", ...}]'
and UNDERSTUDY_ROUTES='[{"model": "gpt-*", "provider": "local"}]' (replacing the TOML file's).

Routes are tried in order, first match wins: [[routes]] tables, then providers' `models`, then the
Anthropic (claude-*) and Gemini (gemini-*) shortcuts, then the OpenAI shortcut's globs. A model no
route matches goes to the offline model. A shortcut replaces a TOML provider of the same name.
"""
from __future__ import annotations

import os
from fnmatch import fnmatchcase
from typing import Mapping

from app.inference import cassettes, http
from app.inference.base import Provider
from app.inference.providers.anthropic import AnthropicProvider
from app.inference.providers.gemini import GeminiProvider
from app.inference.providers.openai_compat import OpenAICompatProvider

KINDS = {"openai": OpenAICompatProvider, "anthropic": AnthropicProvider, "gemini": GeminiProvider}
_PROVIDER_KEYS = {"name", "kind", "base_url", "api_key", "api_key_env", "timeout", "max_retries", "models", "headers", "responses"}
_CACHE_LIMIT = 4096  # model ids come from clients: bound what they can make us remember


class InferenceRouter:
    def __init__(self, providers: dict[str, Provider], routes: list[tuple[str, str]], default: str = "offline",
                 *, client: http.UpstreamClient | None = None) -> None:
        missing = [name for _, name in routes if name not in providers] + ([default] if default not in providers else [])
        if missing:
            raise ValueError(f"routes name unknown providers: {', '.join(sorted(set(missing)))} (known: {', '.join(providers)})")
        self.providers = providers
        self.routes = list(routes)
        self.default = default
        self.client = client  # the upstream client shared by every provider, closed with the router
        self._cache: dict[str, Provider] = {}

    def responses_provider(self) -> Provider | None:
        """The first provider that speaks the Responses API: response ids no one stored here are its."""
        return next((p for p in self.providers.values() if getattr(p, "speaks_responses", False)), None)

    def route(self, model: str) -> Provider:
        provider = self._cache.get(model)
        if provider is None:
            name = next((target for pattern, target in self.routes if _matches(pattern, model)), self.default)
            provider = self.providers[name]
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[model] = provider
        return provider

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()
        if self.client is not None:
            await self.client.aclose()


def _matches(pattern: str, model: str) -> bool:
    return pattern == model or (any(c in pattern for c in "*?[") and fnmatchcase(model, pattern))


def _flag(value) -> bool | None:
    """UNDERSTUDY_OPENAI_RESPONSES: unset or empty means the default (by base URL)."""
    if isinstance(value, bool) or value is None:
        return value
    return value.strip().lower() in {"1", "true", "yes", "on"} if value.strip() else None


def _patterns(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or ())


def make_provider(spec: dict, client: http.UpstreamClient, *, timeout: float, max_retries: int, environ: Mapping[str, str]) -> Provider:
    """One provider from a `[[providers]]` table."""
    unknown = set(spec) - _PROVIDER_KEYS
    if unknown:
        raise ValueError(f"provider {spec.get('name')!r}: unknown keys {', '.join(sorted(unknown))}")
    name, kind = spec.get("name"), spec.get("kind", "openai")
    if name == "offline":
        raise ValueError("the provider name 'offline' is reserved for the built-in offline model")
    if not name or kind not in KINDS:
        raise ValueError(f"provider {name!r}: needs a name and a kind among {', '.join(KINDS)}")
    api_key = spec.get("api_key") or ""
    if spec.get("api_key_env"):
        api_key = environ.get(spec["api_key_env"], "")
        if not api_key:
            raise ValueError(f"provider {name!r}: the environment variable {spec['api_key_env']} is not set")
    retries = int(spec.get("max_retries", max_retries))
    options = {}
    if spec.get("responses") is not None:
        if kind != "openai":
            raise ValueError(f"provider {name!r}: 'responses' applies to kind 'openai' only")
        if not isinstance(spec["responses"], bool):
            raise ValueError(f"provider {name!r}: 'responses' must be true or false")
        options["responses"] = spec["responses"]
    return KINDS[kind](
        name, spec.get("base_url"), api_key, client,
        timeout=float(spec.get("timeout", timeout)), retry=http.RetryPolicy(max_attempts=max(retries, 0) + 1),
        headers=spec.get("headers"), **options,
    )


def build_router(settings, offline: Provider, *, environ: Mapping[str, str] | None = None) -> InferenceRouter:
    """The router the settings describe; its upstream providers share one pooled HTTP client."""
    environ = os.environ if environ is None else environ
    specs: dict[str, dict] = {spec.get("name"): dict(spec) for spec in settings.providers}
    routes = [(pattern, r.get("provider")) for r in settings.routes for pattern in _patterns(r.get("model"))]
    routes += [(pattern, spec["name"]) for spec in specs.values() for pattern in _patterns(spec.get("models"))]
    shortcuts = [
        ("anthropic", settings.anthropic_api_key, settings.anthropic_base_url, ["claude-*"]),
        ("gemini", settings.gemini_api_key, settings.gemini_base_url, ["gemini-*"]),
        ("openai", settings.openai_api_key, settings.openai_base_url, list(settings.openai_models) or ["*"]),
    ]
    for kind, key, base_url, patterns in shortcuts:
        if key or (kind == "openai" and base_url):
            specs[kind] = {"name": kind, "kind": kind, "base_url": base_url or None, "api_key": key}
            if kind == "openai":
                specs[kind]["responses"] = _flag(getattr(settings, "openai_responses", ""))
            routes += [(pattern, kind) for pattern in patterns]
    # Record/replay (UNDERSTUDY_RECORD / UNDERSTUDY_REPLAY) wraps every upstream request of the client.
    client = http.new_client(settings.upstream_timeout, cassettes.Tape.from_settings(settings)) if specs else None
    providers: dict[str, Provider] = {"offline": offline}
    for spec in specs.values():
        providers[spec["name"]] = make_provider(
            spec, client, timeout=settings.upstream_timeout, max_retries=settings.upstream_max_retries, environ=environ
        )
    return InferenceRouter(providers, routes, client=client)
