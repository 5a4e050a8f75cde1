def test_plugin_links_to_the_mlflow_registry(monkeypatch) -> None:
    import importlib.util

    from tests.conftest import REPO_ROOT

    monkeypatch.setenv("BERTLOOP_MLFLOW_UI_URL", "http://mlflow.internal:5000/")
    spec = importlib.util.spec_from_file_location(
        "bertloop_links", REPO_ROOT / "plugins" / "bertloop_links.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    views = module.BertloopLinksPlugin.external_views
    assert views[0]["href"] == "http://mlflow.internal:5000/#/models/bertloop-text-classifier"
    assert all(view["destination"] == "nav" for view in views)


def test_airflow_loads_the_plugin() -> None:
    from airflow import plugins_manager

    plugins, import_errors = plugins_manager._get_plugins()
    assert not import_errors
    assert "bertloop_links" in {plugin.name for plugin in plugins}
