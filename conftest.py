"""Root conftest: real servers for the tests (PostgreSQL, mlflow, moto), started on
127.0.0.1 on demand, once per session, by the modules in tests/_services."""

pytest_plugins = [
    "_services.postgres",
    "_services.mlflow_server",
    "_services.moto_server",
    "_services.browser",
]
