import pytest


@pytest.fixture(scope="session")
def tiny_janus_dir(tmp_path_factory):
    """A random-weight Janus checkpoint directory (see milr_janus.tiny), built once per session."""
    # Imported here so that test modules which need no Janus run without the plugin installed.
    from milr_janus.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-janus"))


@pytest.fixture(scope="session")
def tiny_bagel_dir(tmp_path_factory):
    """A random-weight BAGEL checkpoint folder in the published layout (see milr_bagel.tiny), built once per session."""
    from milr_bagel.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-bagel"))
