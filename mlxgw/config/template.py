"""The commented config a fresh home starts with: what `$EDITOR "$(mlxgw config path)"` opens.
Its numbers are the defaults of `mlxgw.settings`, so the two never disagree."""

from mlxgw.pricing import PRICES_AS_OF
from mlxgw.settings import LocalSettings, MappingSettings, Policy, ServerSettings

DEFAULT_CONFIG = """\
# mlxgw configuration. Edit freely: mlxgw keeps your comments and layout.
# Changes are picked up by a running daemon within a second or two.
# API keys do not belong here: use `mlxgw creds set NAME` (they are stored encrypted).

[server]
host = "127.0.0.1"   # keep it on loopback unless you have created client keys (`mlxgw keys create`)
port = {S.port}
request_deadline_s = {S.request_deadline_s:g}   # a request, retries and fallbacks included, never takes longer
# keepalive_s = {S.keepalive_s:g}         # a streamed answer silent this long gets a keep-alive (a long prefill, a slow upstream); 0: never
max_request_mb = {S.max_request_mb:g}        # larger bodies are refused with 413
request_log_days = {S.request_log_days:g}      # `mlxgw log` and `stats` keep this many days of requests; 0: keep them all
responses_days = {S.responses_days:g}        # stored Responses answers (for previous_response_id, GET /v1/responses/ID) are kept this many days; 0: keep them all
# header_timeout_s = {S.header_timeout_s:g}    # a connection must send a whole request head within this (also: idle keep-alive); read at start
# body_timeout_s = {S.body_timeout_s:g}      # ...and then the request's whole body within this, or get 408
# Web pages cannot call mlxgw (it refuses browser Origins, and Host names other than loopback and
# the bound address, which stops DNS rebinding). For a browser app you trust, list its origin; CORS
# preflights are then answered. A name mlxgw is reached by (behind a proxy, on the LAN) goes in allowed_hosts.
# allowed_origins = ["http://localhost:3000"]
# allowed_hosts = ["mlxgw.lan", "*.example.com"]
# metrics_open_on_loopback = {metrics_open}   # /metrics needs a client key once keys exist; true lets a Prometheus on this machine scrape without one
# replica = "gw-1"   # this gateway's name in the request log where replicas share a store; default HOSTNAME:PORT
# Defaults for every backend (each [backends.NAME] may override them):
# connect_timeout_s = {P.connect_timeout_s:g}
# first_byte_timeout_s = {P.first_byte_timeout_s:g}
# idle_timeout_s = {P.idle_timeout_s:g}
# answer_timeout_s = {P.answer_timeout_s:g}   # a non-streamed answer, which arrives only once fully generated
# max_tries = {P.max_tries}
# breaker_failures = {P.breaker_failures}
# breaker_cooldown_s = {P.breaker_cooldown_s:g}

[local]
# The MLX worker that runs local models. Every key here applies live: a running worker takes new
# limits without a restart (models over a lowered limit are unloaded once idle).
max_loaded_models = {L.max_loaded_models}
idle_unload_s = {L.idle_unload_s:g}          # a model unused this long is unloaded; 0: keep models loaded
# memory_limit_gb = 16
# prompt_cache_gb = {L.prompt_cache_gb:g}        # KV caches of earlier prompts kept in memory, per loaded model: a prompt that
#                              # starts like an earlier one (the next turn, another session or sub-agent) skips that part
# disk_cache_gb = {L.disk_cache_gb:g}         # prompts of 1k tokens or more also go to <home>/cache and survive restarts
#                              # (least recently used dropped beyond this); 0: no disk cache. `mlxgw models cache` shows it
# default_max_tokens = {L.default_max_tokens}   # the output limit of a request that sets none
# first_byte_timeout_s = {P.first_byte_timeout_s:g} # the longest the worker may stay silent on a request (a model load included)

# Cloud backends. `mlxgw creds set openai` adds one for you.
# [backends.openai]
# type = "openai"                              # or "anthropic", or "responses": a server of the Responses
#                                              # API only (OpenAI's Responses-only models), which every
#                                              # client is translated to
# base_url = "https://api.openai.com/v1"       # any OpenAI-compatible server works
# api_key_env = "OPENAI_API_KEY"               # optional: read the key from the environment
# max_output_tokens = 16384                    # optional: no request may ask for more (larger ones are lowered)
# max_tokens_field = "max_completion_tokens"   # openai type: the output-limit field translated requests use;
#                                              # default max_completion_tokens for api.openai.com and Azure
#                                              # OpenAI (their reasoning models refuse max_tokens), else
#                                              # max_tokens (older servers ignore the other field)
# responses = true                             # openai type: it serves the Responses API too, so Responses
#                                              # clients (Codex) pass through to it; default true for
#                                              # api.openai.com, else false (they are translated to Chat
#                                              # Completions)

# Mappings: which backend answers which model name (fnmatch patterns; higher priority wins).
# [[mappings]]
# pattern = "gpt-*"
# backend = "openai"
# fallbacks = ["local:demo"]                   # "BACKEND" or "BACKEND:MODEL"
# fallback_on = ["context_length"]             # also move on for a prompt too long for the model, and with
#                                              # "bad_output" for a local tool call or JSON answer that is bad
# sticky_s = {STICKY_S:g}                               # a session that failed over stays on the fallback that
#                                              # answered this long (0: never), then returns to the first choice
# priority = 0
# max_output_tokens = 16384                    # optional: the model's output limit; every attempt of this
#                                              # mapping asks for at most that (and the backend's own, if lower)
# over_budget = "local:demo"                   # optional: a client key over its daily or monthly budget
#                                              # (`mlxgw keys create NAME --daily-usd 5`) is answered by this
#                                              # local model instead; without it, such a key gets 429
# backends = ["mac1", "mac2"]                  # instead of `backend`: equivalent backends sharing the load;
# balance = "least_outstanding"                # each request starts at the least busy ("round_robin": in turn),
#                                              # the others follow as failover, then the fallbacks

# Prices in USD per million tokens, for the cost of each request (`mlxgw stats --by key --by day`) and
# client keys' budgets. mlxgw ships estimates for common OpenAI and Anthropic models (as of {PRICES_AS_OF});
# an entry here replaces them. "MODEL" applies on every cloud backend, "BACKEND:MODEL" on one; fnmatch
# patterns work. cached: prompt tokens read from the cache; cache_write: written to it (default: input).
# [pricing]
# "gpt-4o" = {{ input = 2.5, output = 10, cached = 1.25 }}
# "claude-sonnet-4*" = {{ input = 3, output = 15, cached = 0.3, cache_write = 3.75 }}
# "groq:*" = {{ input = 0.59, output = 0.79 }}

# The store: an SQLite file in the home unless set. Gateway replicas behind one load balancer share a
# PostgreSQL store (MLXGW_STORE_URL overrides this; the password comes from PGPASSWORD or ~/.pgpass,
# never from here). With a shared store, backends, mappings and prices live in the store (README: Scaling out).
# [store]
# url = "postgresql://mlxgw@db.lan:5432/mlxgw"
""".format(S=ServerSettings(), P=Policy(), L=LocalSettings(), PRICES_AS_OF=PRICES_AS_OF, STICKY_S=MappingSettings.sticky_s,
           metrics_open=str(ServerSettings().metrics_open_on_loopback).lower())
