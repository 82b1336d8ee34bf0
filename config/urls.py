"""Root URLs: the CRM pages, the admin, the REST API with its schema, each app's URLs and the demo site."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from accounts.csp import api_docs_view
from leadcrm import api, views

router = DefaultRouter()
router.register("leads", api.LeadViewSet, basename="lead")

api_v1: list[URLPattern | URLResolver] = [
    path("", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", api_docs_view(url_name="api-v1:schema"), name="docs"),  # CSP-clean Swagger UI
    path("chat/", include("chatbot.api_urls")),
    path("chat/sites/<str:key>/me/", include("privacy.api_urls")),  # "What do you know about me?"
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages without an icon link (the admin, the API docs).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api-v1"))),
    path("account/", include("accounts.urls")),  # API tokens
    path("crm/", include("leadcrm.urls")),
    path("scoring/", include("scoring.urls")),
    path("ml/", include("scoring.ml.urls")),
    path("chat/demo/", include("demo.urls")),  # the demo website, before the chat's staff pages
    path("chat/", include("chatbot.urls")),
    path("privacy/", include("privacy.urls")),
    path("audit/", include("audit.urls")),  # the audit trail (managers)
]

handler404 = "config.errors.page_not_found"  # JSON under /api/
handler500 = "config.errors.server_error"  # a database outage answers 503, not 500
