
import pendulum
from airflow.sdk import dag

from airflow_carbon import CarbonOperator


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def carbon_bad_on_budget_exceeded():
    CarbonOperator(task_id="train", python_callable=print, location="FR", co2_budget_g=100, on_budget_exceeded='explode')


carbon_bad_on_budget_exceeded()
