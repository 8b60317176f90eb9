"""The tables."""

from __future__ import annotations

import datetime as dt

from peewee import (
    BooleanField,
    DatabaseProxy,
    DateField,
    DateTimeField,
    FloatField,
    IntegerField,
    Model,
    TextField,
)

db = DatabaseProxy()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BaseModel(Model):
    class Meta:
        database = db


class Meta(BaseModel):
    """Key/value facts about the store: schema version, config generation."""

    key = TextField(primary_key=True)
    value = TextField()


class Mapping(BaseModel):
    position = IntegerField()  # order in the config file: the last tie-breaker
    pattern = TextField(unique=True)
    backend = TextField()
    model = TextField(null=True)
    fallbacks = TextField(default="[]")  # JSON list of "BACKEND" / "BACKEND:MODEL"
    priority = IntegerField(default=0)
    enabled = BooleanField(default=True)
    fallback_on = TextField(default="[]")
    max_output_tokens = IntegerField(null=True)
    over_budget = TextField(null=True)  # "local:MODEL" for client keys over their budget
    backends = TextField(default="[]")  # JSON list: the equivalent backends of a spread mapping
    balance = TextField(null=True)  # how a spread mapping picks its first backend
    sticky_s = FloatField(null=True)  # None: the default


class Credential(BaseModel):
    backend = TextField(unique=True)
    type = TextField()
    base_url = TextField()
    encrypted_key = TextField(null=True)  # a Fernet token, never plaintext
    key_hint = TextField(null=True)  # "sk-…abcd": enough to recognise a key, useless to use one
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class ClientKey(BaseModel):
    name = TextField(unique=True)
    key_hash = TextField(unique=True)  # sha256 hex of the key; the key itself is never stored
    prefix = TextField()
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)
    # Limits (None: none). Budgets are USD per UTC day / month, from the request log's costs.
    rpm = IntegerField(null=True)
    tpm = IntegerField(null=True)
    daily_usd = FloatField(null=True)
    monthly_usd = FloatField(null=True)
    # Token buckets as GCRA keeps them: the Unix time at which everything admitted (rpm) or used
    # (tpm) so far is paid off at the limit's rate. One number per limit, moved by one UPDATE.
    rpm_clear_at = FloatField(default=0.0)
    tpm_clear_at = FloatField(default=0.0)


class RequestLog(BaseModel):
    time = DateTimeField(default=utcnow, index=True)
    request_id = TextField()
    protocol = TextField()  # the client's: "openai" | "anthropic" | "responses"
    requested_model = TextField()
    backend = TextField(null=True)  # what served it
    model = TextField(null=True)
    attempts = TextField(default="[]")  # JSON: [{"backend","model","error"}...]
    fallbacks = IntegerField(default=0)
    status = IntegerField()
    stream = BooleanField(default=False)
    latency_ms = FloatField(null=True)
    ttft_ms = FloatField(null=True)
    input_tokens = IntegerField(null=True)  # as Anthropic counts them: without the cache reads and writes
    output_tokens = IntegerField(null=True)
    cached_tokens = IntegerField(null=True)  # prompt tokens read from a cache (the local worker's, or the upstream's)
    cache_write_tokens = IntegerField(null=True)  # prompt tokens an upstream reported written to its cache
    prefill_ms = FloatField(null=True)  # local: the worker's own prefill time (else time to first byte); cloud: None
    error_kind = TextField(null=True)
    client_key = TextField(null=True, index=True)  # the name of the key the client presented
    cost_usd = FloatField(null=True)  # 0 for local models; None: no price known, or nothing answered
    replica = TextField(null=True)  # the gateway that served it ([server] replica, or HOSTNAME:PORT)
    sticky = BooleanField(default=False)  # its session was routed to the fallback it failed over to before


class StoredResponse(BaseModel):
    """A Responses answer mlxgw produced by translation, kept for `previous_response_id` and
    `GET /v1/responses/{id}` until [server] responses_days have passed."""

    response_id = TextField(primary_key=True)  # "resp_…"
    created_at = DateTimeField(default=utcnow, index=True)
    response = TextField()  # JSON: the Response object, output items included
    input_items = TextField()  # JSON: every input item the answer saw, earlier turns included
    # Who may read, continue or delete it: a prefix of the client key's hash ("" without client
    # keys; NULL for rows kept before owners were). A key re-created under the same name is not it.
    owner = TextField(null=True)


class KeyUsage(BaseModel):
    """What one client key used on one UTC day: its budgets' counters, kept apart from the request
    log so that pruning the log does not reset them."""

    key = TextField()  # the client key's name
    day = DateField()
    requests = IntegerField(default=0)
    tokens = IntegerField(default=0)
    cost_usd = FloatField(default=0.0)

    class Meta:
        indexes = ((("key", "day"), True),)


TABLES = [Meta, Mapping, Credential, ClientKey, RequestLog, StoredResponse, KeyUsage]
