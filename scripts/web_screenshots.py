#!/usr/bin/env python3
"""Screenshots of the hub's web pages for the README: list, dataset, file (docs/web-*.png).

Starts a hub with a few realistic datasets (taxi trips as CSV and Parquet, weather, a
private one), signs in as their owner in headless Chromium (Debian's chromium +
chromium-driver through Selenium) and saves three PNGs.

    .venv/bin/python scripts/web_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_web import commit_on_disk, create_user, running_hub


def taxi_csv(month: int, rows: int = 3000) -> bytes:
    rng = random.Random(month)
    lines = ["tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,PULocationID,"
             "DOLocationID,payment_type,fare_amount,tip_amount,total_amount"]
    for i in range(rows):
        d, h, m = 1 + i % 28, i % 24, (i * 7) % 60
        dist = rng.uniform(0.4, 18)
        fare = 3 + dist * 2.6
        tip = fare * rng.choice((0, 0.1, 0.18, 0.2))
        lines.append(f"2024-{month:02d}-{d:02d} {h:02d}:{m:02d}:00,2024-{month:02d}-{d:02d} {h:02d}:{(m + 17) % 60:02d}:00,"
                     f"{rng.randint(1, 4)},{dist:.2f},{rng.randint(1, 263)},{rng.randint(1, 263)},"
                     f"{rng.choice((1, 1, 2))},{fare:.2f},{tip:.2f},{fare + tip + 1.5:.2f}")
    return ("\n".join(lines) + "\n").encode()


def zones_parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    boroughs = ["Manhattan", "Queens", "Brooklyn", "Bronx", "Staten Island", "EWR"]
    zones = ["Alphabet City", "Astoria", "Battery Park", "Bay Ridge", "Central Park", "Chinatown", "Clinton East",
             "East Village", "Flatiron", "Greenpoint", "Harlem", "JFK Airport", "LaGuardia Airport", "Midtown Center"]
    n = 263
    table = pa.table({
        "LocationID": list(range(1, n + 1)),
        "Borough": [boroughs[i % len(boroughs)] for i in range(n)],
        "Zone": [f"{zones[i % len(zones)]}{'' if i < len(zones) else f' {i // len(zones)}'}" for i in range(n)],
        "service_zone": ["Yellow Zone" if i % 3 else "Boro Zone" for i in range(n)],
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def seed(url: str, data_dir: Path, token: str) -> None:
    with httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=300) as api:
        sets = [
            ("nyc-taxi", "public", "Yellow taxi trip records of New York City, 2024: pickup and drop-off times and "
             "zones, distances, fares and tips. One CSV per month; the zone lookup as Parquet.",
             ["nyc", "transport", "tabular"], "CC-BY-4.0"),
            ("weather-oslo", "public", "Hourly temperature, wind and precipitation at Blindern, Oslo, since 1950.",
             ["climate", "timeseries"], "NLOD-2.0"),
            ("street-images", "public", "Street-level photos with bounding boxes for 14 object classes.",
             ["vision", "images"], "CC-BY-SA-4.0"),
            ("payroll-2024", "private", "Salaries by team (internal).", ["hr"], None),
            ("sensor-logs", "private", "Raw telemetry of the test fleet, one JSON-lines file per day.",
             ["iot", "raw"], None),
        ]
        for name, vis, desc, tags, lic in sets:
            api.post("/datasets", json={"name": name, "visibility": vis, "description": desc, "tags": tags,
                                        "license": lic}).raise_for_status()
        months = {f"2024/{m:02d}/yellow_tripdata.csv": taxi_csv(m) for m in range(1, 7)}
        commit_on_disk(api, data_dir, "alice", "nyc-taxi", {**months, "zones/taxi_zones.parquet": zones_parquet(),
                                                            "README.md": b"# NYC taxi trips\n"})
        commit_on_disk(api, data_dir, "alice", "nyc-taxi", {**months, "2024/07/yellow_tripdata.csv": taxi_csv(7),
                                                            "zones/taxi_zones.parquet": zones_parquet(),
                                                            "README.md": b"# NYC taxi trips\n\n2024, January to July.\n"})
        commit_on_disk(api, data_dir, "alice", "weather-oslo",
                       {f"{y}.csv": b"time,temp_c,wind_ms,precip_mm\n" * 200 for y in range(1950, 2025)})
        commit_on_disk(api, data_dir, "alice", "sensor-logs",
                       {f"2024-06-{d:02d}.jsonl": b'{"t": 0, "v": 1.0}\n' * 4000 for d in range(1, 31)})
        commit_on_disk(api, data_dir, "alice", "payroll-2024", {"salaries.csv": b"team,pay\nA,1\n"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs"))
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    out = Path(args.out)
    with running_hub("--anonymous-read", user="alice") as (url, data_dir, token):
        seed(url, data_dir, token)
        bob = create_user(data_dir, None, "bob")
        with httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {bob}"}) as api:
            api.post("/datasets", json={"name": "bike-share", "visibility": "public", "tags": ["transport"],
                                        "description": "Citi Bike trips, monthly."}).raise_for_status()
            commit_on_disk(api, data_dir, "bob", "bike-share", {"2024-05.csv": taxi_csv(5, 800)})
        profile = tempfile.mkdtemp(prefix="dshub-shots-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for f in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1360,860", f"--user-data-dir={profile}"):
            opts.add_argument(f)
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
        try:
            driver.get(url + "/signin")
            driver.find_element("id", "token").send_keys(token)
            driver.find_element("id", "signin-submit").click()
            for name, path in (("web-list.png", "/"), ("web-dataset.png", "/datasets/alice/nyc-taxi"),
                               ("web-file.png", "/datasets/alice/nyc-taxi/file/v2/2024/01/yellow_tripdata.csv")):
                driver.get(url + path)
                driver.save_screenshot(str(out / name))
                print(f"wrote {out / name}")
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
