from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from webapp import health
from webapp.accounts import views as account_views
from webapp.detection.api import DeepStackDetectionView
from webapp.images import views as image_views
from webapp.jobs import views as job_views
from webapp.ops import status as ops_status

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("ops/status/", ops_status.status_page, name="ops-status"),
    path("", image_views.gallery, name="gallery"),
    path("upload/", image_views.upload_page, name="upload"),
    path("images/<int:image_id>/", image_views.image_detail, name="image-detail"),
    path("images/<int:image_id>/detect/", image_views.image_detect, name="image-detect"),
    path("datasets/", image_views.dataset_list, name="datasets"),
    path("datasets/<int:dataset_id>/", image_views.dataset_detail, name="dataset-detail"),
    path("datasets/<int:dataset_id>/stats/", image_views.dataset_stats, name="dataset-stats"),
    path("jobs/", job_views.job_list, name="jobs"),
    path("jobs/<int:job_id>/", job_views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/cancel/", job_views.job_cancel, name="job-cancel"),
    path("faces/", include("webapp.faces.page_urls", namespace="faces")),
    path("label/", include("webapp.labeling.page_urls", namespace="labeling")),
    path("analysis/", include("webapp.analysis.page_urls", namespace="analysis")),
    path("training/", include("training.page_urls", namespace="training")),
    path("account/tokens/", account_views.tokens_page, name="tokens"),
    path("account/tokens/<int:token_id>/revoke/", account_views.revoke_token, name="token-revoke"),
    path("login/", account_views.ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("media/<path:path>", image_views.media, name="media"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("webapp.api.urls", namespace="api")),
    path("v1/vision/detection", DeepStackDetectionView.as_view(), name="deepstack-detection"),
]
