"""Django settings, read from the environment with defaults that work on a laptop.

Defaults: SQLite in a file under ./var, Redis at localhost:6379, DEBUG on with a
development secret. Production (DEBUG off) refuses to start with the development secret.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from webapp.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
# The default SQLite database and media live here; any manage.py command on a fresh clone
# (not only `make run`) must find the folder.
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # refused when DEBUG is off
SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
DEBUG = env_bool("DEBUG", True)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a private random value when DEBUG is off "
        "(the built-in development secret is public)."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
CSRF_FAILURE_VIEW = "webapp.security.csrf_failure"  # JSON on API paths

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "webapp.accounts",
    "webapp.images",
    "webapp.jobs",
    "webapp.api",
    "webapp.detection",
    "webapp.faces",
    "webapp.labeling",
    "webapp.analysis",
    "webapp.ops",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "webapp.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before anything reads a body (the CSRF check, the views): size and caller, from headers.
    "webapp.accounts.body_guard.BodyGuardMiddleware",
    "webapp.accounts.middleware.LoginRequiredForPagesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "gallery"
LOGOUT_REDIRECT_URL = "login"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default under concurrent web and worker processes: readers never block
    # the writer (WAL), a writer waits for the lock instead of failing at once ("database is
    # locked"), and a transaction that will write takes the lock when it begins (IMMEDIATE),
    # so two never deadlock upgrading from read to write. PostgreSQL is for more load.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": env_int("SQLITE_BUSY_TIMEOUT_S", 20, minimum=1),
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Media is served through a login-checked view, never as public static files.
MEDIA_URL = "/media/"

# Upload limits. The byte limit is checked before decoding; the pixel limit before the
# pixels are decompressed, so a decompression bomb is refused without allocating it.
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 25 * 1024 * 1024, minimum=1024)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 50_000_000, minimum=1)
UPLOAD_MAX_FILES = env_int("UPLOAD_MAX_FILES", 200, minimum=1)
# The largest request body accepted at all, refused from Content-Length before a byte of it
# is read; each endpoint then applies its own limit. By default an import's largest zip
# (IMPORT_MAX_BYTES, 2 GB) and its form fields.
REQUEST_MAX_BYTES = env_int(
    "REQUEST_MAX_BYTES", env_int("IMPORT_MAX_BYTES", 2 * 1024**3, minimum=1) + 2**20, minimum=1024
)
# Failed sign-ins per address and user name, and bad API keys per address, allowed within
# the window before 429 (counted in Redis, shared by every web process).
THROTTLE_PREFIX = env_str("THROTTLE_PREFIX", "workbench")
THROTTLE_WINDOW_S = env_int("THROTTLE_WINDOW_S", 300, minimum=1)
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
TOKEN_FAILURE_LIMIT = env_int("TOKEN_FAILURE_LIMIT", 50, minimum=1)
# A pretrained backbone file for transfer learning (torchvision's resnet18 is 45 MB).
BACKBONE_MAX_BYTES = env_int("BACKBONE_MAX_BYTES", 200 * 1024 * 1024, minimum=1024)
# Faces: the dataset whose subjects recognition searches (created on first use).
FACES_GALLERY_DATASET = env_str("FACES_GALLERY_DATASET", "people")

DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES

# Celery: Redis broker, JSON only, late acknowledgement so a job whose worker dies is
# delivered again instead of lost.
REDIS_URL = env_str("REDIS_URL", "redis://localhost:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 1, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("JOB_SOFT_TIME_LIMIT", 6 * 3600, minimum=1)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 120
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message whose worker vanished (killed, machine lost) is re-delivered after this long.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("BROKER_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 60)
}
CELERY_TASK_DEFAULT_QUEUE = env_str("QUEUE_DEFAULT", "default")
JOB_QUEUE_DEFAULT = CELERY_TASK_DEFAULT_QUEUE
JOB_QUEUE_GPU = env_str("QUEUE_GPU", "gpu")
# With no broker at all (a laptop without Redis), jobs run in a thread of the web process.
JOBS_IN_PROCESS = env_bool("JOBS_IN_PROCESS", False)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
# A running job's worker beats this often; a job whose beat is this old is taken to have
# lost its worker (it may be taken again; a delivery while it still beats is dropped).
JOB_HEARTBEAT_S = env_int("JOB_HEARTBEAT_S", 15, minimum=1)
JOB_STALE_AFTER_S = env_int("JOB_STALE_AFTER_S", 60, minimum=2)
# Workers sweep for jobs the broker lost or never got (webapp.jobs.sweeper) this often; a job
# younger than the grace may still be on its way to the broker.
JOB_SWEEP_S = env_int("JOB_SWEEP_S", 30, minimum=1)
JOB_SWEEP_GRACE_S = env_int("JOB_SWEEP_GRACE_S", 10, minimum=0)
# Starting a job while Redis is down answers within about a second (the job is kept and sent
# later) instead of hanging the request on Celery's default retries.
JOB_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Network backend for serving: "auto" runs ONNX Runtime on the CPU and PyTorch on CUDA.
INFERENCE_BACKEND = env_str("INFERENCE_BACKEND", "auto")
if INFERENCE_BACKEND not in ("auto", "torch", "onnx"):
    raise ImproperlyConfigured(
        f"INFERENCE_BACKEND must be auto, torch or onnx, got {INFERENCE_BACKEND!r}"
    )

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["webapp.accounts.permissions.RolePermission"],
    "DEFAULT_PARSER_CLASSES": [
        "webapp.api.parsers.JSONParser",  # objects only
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "webapp.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "webapp.api.errors.exception_handler",
    "DEFAULT_VERSIONING_CLASS": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Vision Workbench API",
    "DESCRIPTION": "Upload images, run jobs, detect objects, verify faces, review and retrain.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webapp.api.schema.document_every_status",
    ],
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"job": {"()": "webapp.jobs.logs.JobIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s job=%(job)s %(name)s: %(message)s"}
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["job"]}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
