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
from chatbot import manage_api as chat_api
from dataio import api as dataio_api
from leadcrm import api, views
from scoring import api as scoring_api
from webhooks import api as webhooks_api

router = DefaultRouter()
router.register("leads", api.LeadViewSet, basename="lead")
router.register("interactions", api.InteractionViewSet, basename="interaction")
router.register("segments", api.SegmentViewSet, basename="segment")
router.register("follow-ups", api.FollowUpViewSet, basename="follow-up")
router.register("rules", scoring_api.RuleViewSet, basename="rule")
router.register("sites", chat_api.SiteViewSet, basename="site")
router.register("faq-entries", chat_api.FaqEntryViewSet, basename="faq-entry")
router.register("webhooks", webhooks_api.WebhookViewSet, basename="webhook")
router.register("webhook-deliveries", webhooks_api.DeliveryViewSet, basename="webhook-delivery")
router.register("imports", dataio_api.ImportJobViewSet, basename="import")

api_v1: list[URLPattern | URLResolver] = [
    path("", include(router.urls)),
    path("sync/", include(api.sync_urls)),  # change feeds for another system (docs/api.md)
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", api_docs_view(url_name="api-v1:schema"), name="docs"),  # CSP-clean Swagger UI
    path("chat/", include("chatbot.api_urls")),
    path("", include("tracking.api_urls")),  # track/sites/<key>/… (snippet), events/batch
    path("chat/sites/<str:key>/me/", include("privacy.api_urls")),  # "What do you know about me?"
    path("email/", include("outreach.api_urls")),  # replies posted by the inbound mail hook
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
    path("", include("outreach.urls")),  # /e/o/… open pixel, /e/c/… click links, /email/leads/<id>/
    path("sequences/", include("sequences.urls")),  # follow-up sequences (managers; the lead panel)
    path("webhooks/", include("webhooks.urls")),  # outgoing webhooks (managers)
    path("import/", include("dataio.urls")),  # CSV/Excel import and CSV export
]

handler404 = "config.errors.page_not_found"  # JSON under /api/
handler500 = "config.errors.server_error"  # a database outage answers 503, not 500
