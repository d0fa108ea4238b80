"""The web fixtures of tests/central/web (web_server, web_client, anon_client) for the API."""

from tests.central.web.conftest import (  # noqa: F401 - fixtures, re-exported for pytest
    anon_client,
    web_client,
    web_config,
    web_pepper,
    web_server,
)
