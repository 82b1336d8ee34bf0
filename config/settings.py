"""LeadCRM settings: one module, everything read from the environment.

With nothing set you get the embedded shape: SQLite in the project folder, Celery tasks run
eagerly in-process, a local-memory cache and an in-memory channel layer. Setting DATABASE_URL and
REDIS_URL switches to the production shape: PostgreSQL, a Redis broker for Celery workers, a Redis
cache and a Redis channel layer for live chat.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONCE as CSP_NONCE
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
SHARED_DATA_DIR = BASE_DIR.parent / "shared" / "data"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment variables win

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY for production, or DEBUG=1 for a development run."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",  # runserver speaks ASGI (websockets for live chat)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "axes",  # login throttle (accounts: LOGIN_FAILURE_LIMIT, LOGIN_COOLOFF_MINUTES)
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI files served from here, not from a CDN
    "django_htmx",
    "channels",
    "leadcrm",
    "scoring",
    "scoring.ml",
    "chatbot",
    "accounts",  # API tokens (hashed, expiring) and the login throttle
    # Above the core apps: they import leadcrm, scoring and chatbot, never the other way round.
    "pgtrigger",  # installs the audit triggers after migrate (audit/triggers.py)
    "audit",  # the append-only audit trail
    "privacy",  # export, erasure and retention of a person's data
    "dataio",  # CSV/Excel import and CSV export
    "tracking",  # website tracking snippet and the events API
    "outreach",  # outbound email with signed open/click tracking, replies
    "sequences",  # follow-up sequences: emails, waits and tasks a manager defines
    "webhooks",  # signed outgoing webhooks
    # On top of the product; nothing above imports them.
    "demo",
    "bench",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "accounts.middleware.SecurityHeadersMiddleware",  # Content-Security-Policy with nonces, Permissions-Policy
    "config.errors.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.time_zones.TimeZoneMiddleware",  # times in the reader's zone (profile, else browser)
    "audit.middleware.AuditMiddleware",  # who changed a row (PostgreSQL), refused accesses
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a login lockout into the explained login page
]

ROOT_URLCONF = "config.urls"
# SQLite ignores an index's INCLUDE columns (leadcrm's interaction_lead_time_idx carries kind for
# PostgreSQL's index-only scans); the index itself exists on both.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "leadcrm.context_processors.roles",
                "csp.context_processors.nonce",  # {{ CSP_NONCE }}: the Content-Security-Policy nonce
            ],
        },
    },
]

# --- Data -------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded shape: let the web process and eager tasks share the file without "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    DATABASES["default"]["CONN_MAX_AGE"] = 0
IS_POSTGRES = DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")
# ASGI (the chat) runs each request in its own thread: with persistent connections, hundreds of open
# chats would exceed PostgreSQL's max_connections. DATABASE_POOL_MAX=N gives each process a pool
# of N connections instead (psycopg-pool; connections go back to the pool after each request).
DATABASE_POOL_MAX = env.int("DATABASE_POOL_MAX", default=0)
if IS_POSTGRES and DATABASE_POOL_MAX > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # required by Django's pool
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DATABASE_POOL_MAX),
        "max_size": DATABASE_POOL_MAX,
        # A database that is away must not hold web requests for long: they answer 503 instead.
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=3.0),
    }
if IS_POSTGRES:
    # Fail fast when the server is unreachable (the default is to wait as long as the OS does).
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int(
        "DATABASE_CONNECT_TIMEOUT", default=3
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            # Fails open to a per-process cache while Redis is away or hung (config/cache.py).
            "BACKEND": "config.cache.FailOpenRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
        }
    }
    CHANNEL_LAYERS = {
        # socket_timeout above channels_redis' 5 s blocking pop: redis-py's default (5 s) made idle
        # websocket consumers crash with "Timeout reading from Redis".
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # capacity: all consumers of one process share a Redis list; 100 (the default) drops
            # replies once ~100 open chats in a process receive at the same moment.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 10}], "capacity": 2000},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
if REDIS_URL:
    # kombu's Redis transport with the fix that keeps workers alive when Redis drops mid-task.
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker that is down or hung must hold nothing up for long: a send fails within these timeouts,
# after which web requests hand their tasks to a background publisher (config/on_commit.py); the
# row is already committed and the periodic sweep catches the work up from the database.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
    "socket_timeout": 1,
    "socket_connect_timeout": 1,
    "polling_interval": 0.5,  # the worker's BRPOP returns within it, well inside the socket timeout
    "health_check_interval": 10,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY = False
# A full recompute's worker renews its lease after every chunk; once it runs out (the worker was
# killed), the sweep hands the run to another worker.
SCORING_RUN_LEASE_SECONDS = env.int("SCORING_RUN_LEASE_SECONDS", default=120)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}  # each app adds its periodic tasks below

# --- Auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "leadcrm:queue"  # salespeople land on their queue; Home has the summary
LOGOUT_REDIRECT_URL = "login"

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",  # hashed, expiring tokens (docs/security.md)
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "config.openapi.AutoSchema",  # + the error responses of each operation
    "DEFAULT_THROTTLE_RATES": {"chat_visitor": "30/min", "chat_ip": "120/min"},
    # Per-IP limits read X-Forwarded-For only behind this many proxies of your own; 0 (the default)
    # uses the socket address, so a client cannot make up a new address per request.
    "NUM_PROXIES": env.int("TRUSTED_PROXIES", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LeadCRM API",
    "DESCRIPTION": "Leads, interactions and scores of LeadCRM, plus the public chat-widget endpoints.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The API docs page works without internet access: Swagger UI from our own static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Locale, static ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True  # serve from app/static dirs without collectstatic in dev and tests

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # No personal data in logs: query strings (search terms, visitor ids) and email addresses are
    # cut out of every record a handler here writes (config/logfilters.py, docs/audit.md).
    "filters": {"no_personal_data": {"()": "config.logfilters.RedactPersonalData"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["no_personal_data"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "pgtrigger": {"level": "WARNING"},  # one line per trigger at every migrate (and test flush)
        # Django's own loggers and the access logs (runserver, daphne's runserver, uvicorn, gunicorn
        # when it logs through Django): through the filtered handler, not Django's default ones.
        **{
            name: {"handlers": ["console"], "level": "INFO", "propagate": False}
            for name in (
                "django",
                "django.server",
                "django.channels.server",
                "uvicorn.access",
                "gunicorn.access",
            )
        },
    },
}

SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
# HTTPS. Behind a reverse proxy that terminates TLS, set SECURE_PROXY_SSL_HEADER=1 so Django trusts
# its X-Forwarded-Proto (only if the proxy overwrites that header). HSTS: start small (e.g. 3600),
# raise to a year once every page works over HTTPS; browsers remember it.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# --- Periodic work (Celery beat) --------------------------------------------------------------
# Each app's periodic tasks; one place so operators see the whole schedule.
CELERY_BEAT_SCHEDULE.update(
    {
        # Rule scoring: rescore leads whose task was lost (broker away), and restart lost recomputes.
        # Sweeps expire: while no worker consumes, they must not pile up and then run back to back.
        "scoring-sweep-stale": {
            "task": "scoring.tasks.sweep_stale_scores",
            "schedule": 10.0,
            "options": {"expires": 9.0},
        },
        # Batch events: apply the leads' last activity and rescore requests a lost nudge left waiting.
        "leadcrm-apply-activity": {
            "task": "leadcrm.tasks.apply_recorded_activity",
            "schedule": 10.0,
            "options": {"expires": 9.0},
        },
        # Rule scoring: decay and day windows move at midnight UTC; refresh every lead just after.
        "scoring-refresh-decay": {
            "task": "scoring.tasks.refresh_decay",
            "schedule": crontab(minute=10, hour=0),
        },
        # Predictive scoring: retrain weekly (Monday 03:00 UTC); promoted only if not worse.
        "ml-weekly-retrain": {
            "task": "scoring.ml.tasks.weekly_retrain",
            "schedule": crontab(minute=0, hour=3, day_of_week=1),
        },
        # Predictive scoring: re-send retrains the broker lost; fail runs whose worker died.
        "ml-sweep-runs": {
            "task": "scoring.ml.tasks.sweep_training_runs",
            "schedule": 60.0,
            "options": {"expires": 55.0},
        },
    }
)

# --- Chat widget trust (chatbot) ----------------------------------------------------------------
# Rate limits of the public widget API (docs/chat.md#rate-limits), per minute AND per hour:
# every request per client IP and per site; new conversations per IP and per site (never per the
# browser's own visitor id); writes per conversation (its server-issued token). Client IPs come
# from X-Forwarded-For only behind TRUSTED_PROXIES proxies (see REST_FRAMEWORK above).
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].update(
    {
        "chat_ip": env.str("CHAT_RATE_IP_MINUTE", default="120/min"),
        "chat_ip_hour": env.str("CHAT_RATE_IP_HOUR", default="2000/hour"),
        "chat_site": env.str("CHAT_RATE_SITE_MINUTE", default="3000/min"),
        "chat_site_hour": env.str("CHAT_RATE_SITE_HOUR", default="60000/hour"),
        "chat_start_ip": env.str("CHAT_RATE_START_IP_MINUTE", default="10/min"),
        "chat_start_ip_hour": env.str("CHAT_RATE_START_IP_HOUR", default="60/hour"),
        "chat_start_site": env.str("CHAT_RATE_START_SITE_MINUTE", default="300/min"),
        "chat_start_site_hour": env.str("CHAT_RATE_START_SITE_HOUR", default="5000/hour"),
        "chat_visitor": env.str("CHAT_RATE_CONVERSATION_MINUTE", default="30/min"),
        "chat_visitor_hour": env.str("CHAT_RATE_CONVERSATION_HOUR", default="300/hour"),
        # One-time email codes (docs/chat.md#email-verification): codes asked for per conversation,
        # per email address (keyed by its hash), per client IP and per site; confirm tries per conversation.
        "chat_code_conversation": env.str("CHAT_RATE_CODE_CONVERSATION_HOUR", default="3/hour"),
        "chat_code_email": env.str("CHAT_RATE_CODE_EMAIL_HOUR", default="5/hour"),
        "chat_code_email_day": env.str("CHAT_RATE_CODE_EMAIL_DAY", default="10/day"),
        "chat_code_ip": env.str("CHAT_RATE_CODE_IP_HOUR", default="10/hour"),
        "chat_code_site": env.str("CHAT_RATE_CODE_SITE_HOUR", default="300/hour"),
        "chat_code_confirm": env.str("CHAT_RATE_CODE_CONFIRM_HOUR", default="10/hour"),
        "chat_promise_ip": env.str("CHAT_RATE_PROMISE_IP_HOUR", default="10/hour"),
    }
)
# A one-time email code works for this many minutes (and once, and for 5 wrong tries at most).
CHAT_EMAIL_CODE_MINUTES = env.int("CHAT_EMAIL_CODE_MINUTES", default=10)
# Conversations nobody wrote in (no visitor message, no identity) are deleted after this many
# hours, with the leads they made, by the chat-purge-empty beat task.
CHAT_PURGE_EMPTY_AFTER_HOURS = env.int("CHAT_PURGE_EMPTY_AFTER_HOURS", default=24)
CELERY_BEAT_SCHEDULE["chat-purge-empty"] = {
    "task": "chatbot.tasks.purge_empty_chats",
    "schedule": crontab(minute=25),  # hourly
    "options": {"expires": 3000.0},
}
# Routing (docs/chat.md#routing): a chat handed off to a person goes to the lead's owner on duty or
# the next salesperson on duty; unanswered this many seconds later it is offered to everyone on
# duty, and later still the managers are alerted. A countdown task per chat does it on time; the
# chat-route-waiting beat task is the safety net for a lost one.
CHAT_OFFER_ALL_AFTER_S = env.int("CHAT_OFFER_ALL_AFTER_S", default=60)
CHAT_ESCALATE_AFTER_S = env.int("CHAT_ESCALATE_AFTER_S", default=180)
CELERY_BEAT_SCHEDULE["chat-route-waiting"] = {
    "task": "chatbot.tasks.advance_waiting_chats",
    "schedule": 15.0,
    "options": {"expires": 14.0},
}
# Promises (docs/dashboard.md#follow-ups): an overdue follow-up alerts its owner, and the managers
# this many minutes after it fell due (each once).
FOLLOW_UP_ESCALATE_AFTER_MIN = env.int("FOLLOW_UP_ESCALATE_AFTER_MIN", default=60)
CELERY_BEAT_SCHEDULE["leadcrm-escalate-follow-ups"] = {
    "task": "leadcrm.tasks.escalate_overdue_follow_ups",
    "schedule": 60.0,
    "options": {"expires": 55.0},
}

# --- Accounts: API tokens, login throttle, Content-Security-Policy (accounts) -------------------
# docs/security.md explains each of these.

# API tokens: every token expires; only its SHA-256 is stored.
API_TOKEN_DEFAULT_DAYS = env.int("API_TOKEN_DEFAULT_DAYS", default=90)
API_TOKEN_MAX_DAYS = env.int("API_TOKEN_MAX_DAYS", default=365)
# Bad tokens from one address: after this many in the window, that address gets 429 until it ends.
API_TOKEN_FAILURE_LIMIT = env.int("API_TOKEN_FAILURE_LIMIT", default=20)
API_TOKEN_FAILURE_WINDOW_SECONDS = env.int("API_TOKEN_FAILURE_WINDOW_SECONDS", default=600)

# Login throttle (django-axes): LOGIN_FAILURE_LIMIT wrong passwords for one username from one address
# lock that username *from that address* for LOGIN_COOLOFF_MINUTES; other addresses are unaffected and
# the lock lifts by itself. A manager can lift it early (admin → Axes → Access attempts → delete).
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_COOLOFF_MINUTES = env.int("LOGIN_COOLOFF_MINUTES", default=15)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out username+address
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a user who mistyped once and then got in starts from zero
# The client address as the API limits read it (TRUSTED_PROXIES), not blindly X-Forwarded-For.
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.throttle.login_locked_out"
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"  # shared by every web process
AXES_DISABLE_ACCESS_LOG = True  # failures are what we need; no per-login row
AXES_VERBOSE = False  # no start-up banner on every manage.py command; lockouts are in the admin

# Content-Security-Policy (django-csp; accounts.middleware adds this server's ws:/wss: for live chat).
# Scripts and styles only from our own files or with the page's nonce: an injected <script> or
# style="" attribute does nothing. Pages that need more (the API docs) widen it per view.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_SELF],
        "script-src": [CSP_SELF, CSP_NONCE],
        "style-src": [CSP_SELF, CSP_NONCE],
        "img-src": [CSP_SELF, "data:"],
        "connect-src": [CSP_SELF],
        "font-src": [CSP_SELF],
        "object-src": [CSP_NONE],
        "base-uri": [CSP_SELF],
        "form-action": [CSP_SELF],
        "frame-ancestors": [CSP_NONE],
    },
}
# Browser features no page uses, switched off for every page (and anything injected into one).
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), bluetooth=()"

# --- Audit trail (audit) ------------------------------------------------------------------------
# Row changes are recorded by PostgreSQL triggers (audit/triggers.py) that pgtrigger installs after
# every `migrate`, not through the tracked apps' migrations: those apps know nothing of the audit.
PGTRIGGER_MIGRATIONS = False
PGTRIGGER_INSTALL_ON_MIGRATE = True
# 403/404 answers to logged-in users under these paths are recorded as refused accesses.
AUDIT_REFUSED_PATH_PREFIXES = env.list(
    "AUDIT_REFUSED_PATH_PREFIXES",
    default=["/crm/", "/api/v1/leads", "/scoring/", "/ml/", "/chat/", "/audit/", "/privacy/", "/admin/"],
)

# --- Personal data: consent, export, erasure, retention (privacy) -------------------------------
# Retention: unconverted leads with no activity for this many months are anonymised by a nightly
# task (the manager sees what the next run touches on /privacy/retention/). 0 switches it off.
PRIVACY_RETENTION_MONTHS = env.int("PRIVACY_RETENTION_MONTHS", default=24)
CELERY_BEAT_SCHEDULE["privacy-retention"] = {
    "task": "privacy.tasks.apply_retention",
    "schedule": crontab(minute=30, hour=2),  # 02:30 UTC daily, after the night's scoring refresh
}

# --- Import and export (dataio) ---------------------------------------------------------------
# Uploaded import files are kept under MEDIA_ROOT (imports/YYYY/MM/), never served publicly.
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(BASE_DIR / "media"))
DATAIO_MAX_UPLOAD_MB = env.int("DATAIO_MAX_UPLOAD_MB", default=50)  # a bigger upload answers 413
DATAIO_MAX_ROWS = env.int("DATAIO_MAX_ROWS", default=500_000)
CELERY_BEAT_SCHEDULE["dataio-sweep-jobs"] = {
    "task": "dataio.tasks.sweep_import_jobs",
    "schedule": 60.0,  # re-send import jobs the broker lost
    "options": {"expires": 55.0},
}

# --- Website tracking and events API (tracking) -----------------------------------------------
# docs/tracking.md. The snippet's endpoint has its own cheap limits (tracking/limits.py: one Redis
# round trip); its config/identify endpoints and the batch API use DRF throttles.
TRACKING_RATES = {
    "ip_minute": env.int("TRACKING_RATE_IP_MINUTE", default=600),
    "site_minute": env.int("TRACKING_RATE_SITE_MINUTE", default=60_000),
}
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].update(
    {
        "track_ip": env.str("TRACKING_RATE_CONFIG_IP_MINUTE", default="120/min"),
        "track_site": env.str("TRACKING_RATE_CONFIG_SITE_MINUTE", default="30000/min"),
        "events_batch": env.str("EVENTS_BATCH_RATE_USER_MINUTE", default="600/min"),
    }
)
# Events of visitors never identified are deleted after this many days (0: kept).
TRACKING_ANONYMOUS_DAYS = env.int("TRACKING_ANONYMOUS_DAYS", default=30)
CELERY_BEAT_SCHEDULE["tracking-sweep"] = {
    "task": "tracking.tasks.sweep",
    "schedule": 60.0,  # events that raced a visitor's link; old anonymous events
    "options": {"expires": 50.0},
}

# --- Email: outbound, opens, clicks, replies (outreach) ---------------------------------------
# docs/email.md. EMAIL_URL picks the backend: smtp+tls://user:password@smtp.example.com:587 (or
# smtp://, smtp+ssl://); unset, emails are printed to the console (development and the demo).
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)  # EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, …
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)  # seconds; a hung SMTP server fails the send
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="LeadCRM <leadcrm@localhost>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
# The public address of this server: open pixels, click links and lead links in webhooks use it.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://localhost:8000")
# Replies: a mailbox whose mail reaches POST /api/v1/email/inbound; each email's Reply-To is
# local+<signed token>@domain. Unset: Reply-To is the salesperson's own address.
EMAIL_REPLY_ADDRESS = env.str("EMAIL_REPLY_ADDRESS", default="")
EMAIL_MESSAGE_ID_DOMAIN = env.str("EMAIL_MESSAGE_ID_DOMAIN", default="")  # default: DEFAULT_FROM_EMAIL's
# The shared secret the inbound hook sends in X-LeadCRM-Inbound-Secret; unset, the endpoint refuses all.
EMAIL_INBOUND_SECRET = env.str("EMAIL_INBOUND_SECRET", default="")
EMAIL_LINK_MAX_AGE_DAYS = env.int("EMAIL_LINK_MAX_AGE_DAYS", default=365)  # signed links expire
EMAIL_TRACKING_RATE_PER_MINUTE = env.int("EMAIL_TRACKING_RATE_PER_MINUTE", default=120)  # per IP
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["email_inbound"] = env.str("EMAIL_INBOUND_RATE", default="120/min")
CELERY_BEAT_SCHEDULE["outreach-sweep-emails"] = {
    "task": "outreach.tasks.sweep_emails",
    "schedule": 60.0,  # emails whose send task was lost, and retries after an SMTP failure
    "options": {"expires": 55.0},
}

# --- Follow-up sequences (sequences) ----------------------------------------------------------
# docs/sequences.md: every minute, leads who replied, converted or opted out leave their sequence,
# new members of followed segments join, and due steps run (a bounded batch, SKIP LOCKED).
CELERY_BEAT_SCHEDULE["sequences-run-due"] = {
    "task": "sequences.tasks.run_due_steps",
    "schedule": 60.0,
    "options": {"expires": 55.0},
}


# --- Outgoing webhooks (webhooks) -------------------------------------------------------------
# docs/webhooks.md. URLs resolving to private, loopback, link-local, multicast or reserved addresses
# are refused (at registration and at every delivery) unless listed here: CIDRs or host names,
# e.g. WEBHOOKS_ALLOW_PRIVATE_NETWORKS=127.0.0.1/32,receiver.internal
# With DEBUG (the demo) loopback is allowed by default, for the demo's own receiver page.
WEBHOOKS_ALLOW_PRIVATE_NETWORKS = env.list(
    "WEBHOOKS_ALLOW_PRIVATE_NETWORKS", default=["127.0.0.1/32", "::1/128"] if DEBUG else []
)
WEBHOOKS_CONNECT_TIMEOUT = env.float("WEBHOOKS_CONNECT_TIMEOUT", default=3.0)  # seconds
WEBHOOKS_TOTAL_TIMEOUT = env.float("WEBHOOKS_TOTAL_TIMEOUT", default=10.0)  # seconds, whole exchange
WEBHOOKS_MAX_ATTEMPTS = env.int("WEBHOOKS_MAX_ATTEMPTS", default=6)  # then the delivery is "failed"
WEBHOOKS_RETRY_BASE_SECONDS = env.int("WEBHOOKS_RETRY_BASE_SECONDS", default=30)  # 30 s, 1, 2, 4, 8 min…
WEBHOOKS_RETRY_MAX_SECONDS = env.int("WEBHOOKS_RETRY_MAX_SECONDS", default=3600)
# "Became hot": a lead's grade moved into one of these from outside them.
WEBHOOKS_HOT_GRADES = env.list("WEBHOOKS_HOT_GRADES", default=["A1", "A2", "B1"])
CELERY_BEAT_SCHEDULE["webhooks-sweep"] = {
    "task": "webhooks.tasks.sweep_deliveries",
    "schedule": 15.0,  # deliveries whose task was lost (broker away), and due retries
    "options": {"expires": 14.0},
}
CELERY_BEAT_SCHEDULE["webhooks-follow-ups-overdue"] = {
    "task": "webhooks.tasks.emit_overdue_follow_ups",
    "schedule": 60.0,
    "options": {"expires": 55.0},
}


# --- REST API completeness (api) ---------------------------------------------------------------
# Every API request counts against its user's limit (per IP when not logged in); over it: 429 with
# Retry-After. Views with limits of their own (the chat widget's) keep theirs.
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["rest_framework.throttling.UserRateThrottle"]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["user"] = env.str("API_RATE_USER", default="1200/min")
# A sync pass (/api/v1/sync/…) ends this many seconds before it starts, so a write whose transaction
# is still committing is served by the next pass instead of being skipped (docs/api.md).
API_SYNC_LAG_SECONDS = env.int("API_SYNC_LAG_SECONDS", default=5)
# One name per choice set in the OpenAPI schema (several serializers have a `kind`).
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    "InteractionKindEnum": "leadcrm.models.KIND_SLUGS",
    "SegmentKindEnum": "leadcrm.models.SegmentKind",
}
