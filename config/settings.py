"""LeadCRM settings: one module, everything read from the environment.

With nothing set you get the embedded shape: SQLite in the project folder, Celery tasks run
eagerly in-process, a local-memory cache and an in-memory channel layer. Setting DATABASE_URL and
REDIS_URL switches to the production shape: PostgreSQL, a Redis broker for Celery workers, a Redis
cache and a Redis channel layer for live chat.
"""

from __future__ import annotations

from pathlib import Path

import environ
from celery.schedules import crontab
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
    "rest_framework.authtoken",
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
    "audit",  # the append-only audit trail
    "privacy",  # export, erasure and retention of a person's data
    # On top of the product; nothing above imports them.
    "demo",
    "bench",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.errors.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
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
        "rest_framework.authentication.TokenAuthentication",
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
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
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
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
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

# --- Accounts: API tokens, login throttle, Content-Security-Policy (accounts) -------------------

# --- Audit trail (audit) ------------------------------------------------------------------------

# --- Personal data: consent, export, erasure, retention (privacy) -------------------------------
