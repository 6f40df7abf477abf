"""PortalKubeSpawner instances configured as in production, without a hub (the habit of
KubeSpawner's own tests: a mock user and hub)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

from aitestbed.hub.kube_spawner import PortalKubeSpawner
from aitestbed.hub.setup import setup_portal
from aitestbed.policy.model import FlavorSpec, ImageSpec
from aitestbed.settings import Settings, load_settings
from jupyterhub.objects import Server
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_SETTINGS = REPO / "hub_config" / "settings.production.example.yaml"


def production_settings(state_dir: Path) -> Settings:
    """The production example with its state under ``state_dir`` and demo login."""
    loaded = load_settings(PRODUCTION_SETTINGS)
    return dataclasses.replace(
        loaded,
        site=dataclasses.replace(loaded.site, state_dir=state_dir),
        authentication=dataclasses.replace(loaded.authentication, kind="demo"),
    )


def flavor_spec(flavor) -> FlavorSpec:
    return FlavorSpec(
        slug=flavor.slug,
        display_name=flavor.display_name,
        cpu=flavor.cpu,
        memory=flavor.memory,
        gpus=flavor.gpus,
        mig_profile=flavor.mig_profile,
        gpu_product=flavor.gpu_product,
        shm=flavor.shm,
        max_lifetime_hours=flavor.max_lifetime_hours,
    )


def image_spec(image) -> ImageSpec:
    return ImageSpec(slug=image.slug, display_name=image.display_name, image=image.image)


def make_spawner(settings: Settings, api_url: str, user: str = "alice") -> PortalKubeSpawner:
    """A spawner with the hub configuration ``setup_portal`` makes of ``settings``."""
    c = Config()
    setup_portal(c, settings)
    c.KubeSpawner.k8s_api_host = api_url
    mock_user = SimpleNamespace(
        name=user, id=1, url=f"/user/{user}/", escaped_name=user, server=Server()
    )
    return PortalKubeSpawner(config=c, user=mock_user, orm_spawner=None, _mock=True)
