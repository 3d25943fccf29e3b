import sys

from airflow_carbon.cli import main

sys.exit(main())
