from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_carbon import CarbonOperator


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def carbon_start_within_without_forecast():
    CarbonOperator(task_id="train", python_callable=print, location="FR", start_within=timedelta(hours=8))


carbon_start_within_without_forecast()
