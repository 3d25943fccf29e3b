"""Airflow layer: the provider's own tables in Airflow's metadata database (:mod:`.summary`), created and
migrated by ``airflow db migrate`` through :class:`~airflow_carbon.models.db_manager.CarbonDBManager`."""
