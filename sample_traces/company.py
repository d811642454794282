"""Helpwise, the fictional company whose agents the sample traces record.

Helpwise sells a customer-support platform to about forty business tenants. Five
teams each run one agent workflow as its own service, and — like real teams — each
instrumented it with a different library, so the traces carry four attribute
conventions at once. Everything here is plain data; `workflows.py` turns it into runs.

Numbers are chosen so that every workflow has its own shape (steps per run, tools,
model mix, latency, outcome rates) and so that the only changes over time are the
volume seasonality below and the planted incidents of `incidents.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENVIRONMENT = "production"

# -- time and volume --------------------------------------------------------------------

#: Relative volume per UTC hour (Europe and the Americas; quiet nights). Mean is ~1.
HOURLY_PROFILE: tuple[float, ...] = (
    0.22, 0.18, 0.16, 0.16, 0.20, 0.32, 0.55, 0.85, 1.15, 1.40, 1.55, 1.62,
    1.65, 1.75, 1.85, 1.85, 1.75, 1.55, 1.30, 1.05, 0.80, 0.60, 0.42, 0.30,
)
#: Relative volume per ISO weekday (Monday first): quiet weekends.
WEEKDAY_PROFILE: tuple[float, ...] = (1.05, 1.0, 1.0, 1.0, 0.95, 0.40, 0.35)


# -- tenants ------------------------------------------------------------------------------

#: Tenant ids, heaviest first; traffic share follows a Zipf law over this order, so a few
#: tenants (northwind-traders, globex, initech) make most of the volume and the spend.
TENANTS: tuple[str, ...] = (
    "northwind-traders", "globex", "initech", "umbrella-health", "hooli", "stark-logistics",
    "wayne-retail", "soylent-foods", "tyrell-systems", "cyberdyne-labs", "wonka-confectionery",
    "acme-outdoor", "vandelay-imports", "pied-piper", "dunder-paper", "gringotts-finance",
    "oceanic-air", "monarch-travel", "blue-sun-energy", "massive-dynamic", "aperture-labs",
    "black-mesa-research", "prestige-worldwide", "los-pollos", "bluth-homes", "kruger-industrial",
    "sirius-cybernetics", "weyland-shipping", "nakatomi-trading", "duff-beverages", "krusty-kitchens",
    "sterling-cooper", "bushwood-golf", "spacely-sprockets", "cogswell-cogs", "virtucon",
    "gekko-partners", "rekall-travel", "ollivander-wands", "zorg-manufacturing",
)
TENANT_ZIPF_EXPONENT = 1.15
#: Users per tenant scale with traffic share; at least this many.
MIN_USERS_PER_TENANT = 4
USERS_PER_UNIT_SHARE = 900


# -- models ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A model as the application asks for it and as the provider answers.

    `ttft_ms` is the median time before the first output token and `ms_per_token` the
    median decoding time per output token: model-call latency follows output length,
    so a model that writes more is also slower, as in production.
    """

    request_name: str
    response_name: str
    provider: str
    ttft_ms: float
    ms_per_token: float


MODELS: dict[str, Model] = {m.request_name: m for m in (
    Model("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai", 380.0, 9.0),
    Model("gpt-4o", "gpt-4o-2024-08-06", "openai", 520.0, 14.0),
    Model("gpt-4.1", "gpt-4.1-2025-04-14", "openai", 560.0, 15.0),
    Model("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "openai", 420.0, 11.0),
    Model("text-embedding-3-small", "text-embedding-3-small", "openai", 70.0, 0.0),
    Model("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", "anthropic", 900.0, 16.0),
    Model("claude-sonnet-4-20250514", "claude-sonnet-4-20250514", "anthropic", 850.0, 17.0),
    Model("claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022", "anthropic", 520.0, 8.0),
    Model("claude-opus-4-1-20250805", "claude-opus-4-1-20250805", "anthropic", 1400.0, 26.0),
    Model("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001", "anthropic", 450.0, 7.0),
    # Helpwise's own fine-tuned captioning model, served behind an OpenAI-compatible API.
    Model("acme-chartwriter-v1", "acme-chartwriter-v1", "openai", 300.0, 6.0),
)}


# -- tools ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolError:
    """One way a tool call fails, with the share of calls that fail this way."""

    kind: str             # key into content.ERROR_MESSAGES
    rate: float
    error_type: str
    http_status: int | None
    retryable: bool
    duration_ms: float | None = None   # a fixed duration (timeouts), else the tool's own


@dataclass(frozen=True)
class Tool:
    name: str
    median_ms: float
    sigma: float
    errors: tuple[ToolError, ...] = ()
    description: str = ""


TOOLS: dict[str, Tool] = {t.name: t for t in (
    Tool("kb_search", 160.0, 0.45, (
        ToolError("search_unavailable", 0.012, "SearchBackendUnavailable", 503, True),
    ), "Full-text and vector search over the tenant's help-centre articles."),
    Tool("get_account", 240.0, 0.40, (
        ToolError("account_timeout", 0.012, "TimeoutError", None, True, 30000.0),
        ToolError("account_not_found", 0.010, "AccountNotFoundError", 404, False),
    ), "Reads the customer's account from the billing service."),
    Tool("create_ticket", 420.0, 0.35, (
        ToolError("ticket_api_unavailable", 0.015, "ZendeskAPIError", 503, True),
    ), "Opens a ticket in the human support queue (Zendesk)."),
    Tool("update_ticket", 300.0, 0.35, (
        ToolError("ticket_api_unavailable", 0.010, "ZendeskAPIError", 503, True),
    ), "Sets the category, priority and reply of an existing ticket."),
    Tool("issue_refund", 650.0, 0.35, (
        ToolError("refund_declined", 0.030, "PaymentDeclinedError", 402, False),
    ), "Issues a refund through the payment provider."),
    Tool("update_settings", 280.0, 0.35, (
        ToolError("settings_conflict", 0.020, "SettingsConflictError", 409, True),
    ), "Changes an account's configuration through the settings API."),
    Tool("query_warehouse", 1400.0, 0.55, (
        ToolError("warehouse_timeout", 0.015, "QueryTimeoutError", None, True, 60000.0),
    ), "Runs a metrics query against the analytics warehouse."),
    Tool("send_report_email", 350.0, 0.30, (
        ToolError("smtp_rejected", 0.012, "SMTPRecipientsRefused", None, False),
    ), "Mails the finished report to the tenant's admins."),
)}


# -- services and workflows ---------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """One deployed service: its resource attributes, its convention and export format.

    `convention` names the instrumentation the team used (see `conventions.py`);
    `file_format` is how the collector in front of it writes files: `proto` for the
    file exporter's length-prefixed protobuf records in a zstd stream, `json` for OTLP/JSON
    Lines compressed with gzip by log rotation.
    """

    name: str
    version: str
    convention: str
    file_format: str
    scopes: dict[str, tuple[str, str]] = field(default_factory=dict)


SERVICES: dict[str, Service] = {s.name: s for s in (
    Service("support-agent", "3.4.1", "otel_genai", "proto", {
        "app": ("support_agent", "3.4.1"),
        "openai": ("opentelemetry.instrumentation.openai_v2", "2.4b0"),
        "anthropic": ("opentelemetry.instrumentation.anthropic", "0.4b0"),
    }),
    Service("helpcenter-bot", "1.9.4", "openllmetry", "json", {
        "app": ("traceloop.tracer", "0.40.14"),
        "openai": ("opentelemetry.instrumentation.openai.v1", "0.40.14"),
    }),
    Service("billing-agent", "2.3.0", "openinference", "proto", {
        "app": ("billing_agent", "2.3.0"),
        "anthropic": ("openinference.instrumentation.anthropic", "0.1.19"),
    }),
    Service("account-assistant", "1.12.0", "otel_genai_legacy", "json", {
        "app": ("account_assistant", "1.12.0"),
        "openai": ("account_assistant.genai", "1.12.0"),
    }),
    Service("reporting-worker", "0.9.2", "otel_genai", "proto", {
        "app": ("reporting_worker", "0.9.2"),
        "openai": ("opentelemetry.instrumentation.openai_v2", "2.4b0"),
        "anthropic": ("opentelemetry.instrumentation.anthropic", "0.4b0"),
    }),
)}


@dataclass(frozen=True)
class Workflow:
    """A kind of agent run.

    `sessions_per_day` is the weekday session rate at volume scale 1 and
    `runs_per_session` the mean number of runs in a session (chat workflows have
    follow-ups). `escalation_rate` and `failure_rate` are the agent's own decisions;
    tool and model failures add failed runs on top.
    """

    name: str
    service: str
    description: str
    sessions_per_day: float
    runs_per_session: float
    escalation_rate: float
    failure_rate: float
    scheduled_per_tenant: int = 0   # runs per tenant in the Monday-morning batch


WORKFLOWS: dict[str, Workflow] = {w.name: w for w in (
    Workflow("support_triage", "support-agent",
             "Classifies an incoming support ticket, looks up context, drafts the reply and "
             "either updates the ticket or escalates it to a human.",
             140.0, 1.45, 0.12, 0.010),
    Workflow("kb_answer", "helpcenter-bot",
             "Answers a help-centre question from the knowledge base (retrieval-augmented).",
             120.0, 1.9, 0.07, 0.012),
    Workflow("refund_request", "billing-agent",
             "Checks a refund request against policy and issues it, or hands it to billing.",
             125.0, 1.0, 0.10, 0.008),
    Workflow("account_config", "account-assistant",
             "Changes account settings (notifications, SSO, seats) on the customer's behalf.",
             72.0, 1.1, 0.06, 0.008),
    Workflow("weekly_report", "reporting-worker",
             "Writes each tenant's weekly support report; a Monday batch plus ad-hoc runs.",
             7.0, 1.0, 0.015, 0.005, scheduled_per_tenant=1),
)}

#: Scheduled weekly reports start on Mondays between these UTC hours.
WEEKLY_BATCH_HOURS = (5.0, 6.5)
