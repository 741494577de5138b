#!/usr/bin/env python3
"""Writes a realistic policy with N VMs (every schedule type, legacy forms included) to stdout.

Deterministic for a given N, so runs are comparable: python3 benches/gen_policy.py 10000
"""
import json
import sys

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def schedule(i):
    t = f"{i % 24:02d}:{(i * 7) % 60:02d}"
    kind = i % 9
    if kind == 0:
        return {"type": "simple", "pattern": "daily", "time": t}
    if kind == 1:
        return {"type": "simple", "pattern": "weekly", "days": [WEEKDAYS[i % 7], WEEKDAYS[(i + 3) % 7]], "time": t}
    if kind == 2:
        return {"type": "simple", "pattern": "biweekly", "day": WEEKDAYS[i % 7], "anchor_date": "2025-01-06", "time": t}
    if kind == 3:
        return {"type": "simple", "pattern": "monthly", "day_of_month": "last" if i % 2 else 1 + i % 28, "time": t}
    if kind == 4:
        return {"type": "advanced", "days_of_month": [1, 15, "last"], "months": [1, 4, 7, 10], "time": t}
    if kind == 5:
        return {"type": "advanced", "weekdays": [WEEKDAYS[i % 7]], "weeks_of_month": [1, "last"], "time": t}
    if kind == 6:
        return {"type": "cron", "expression": f"{i % 60} {i % 24} * * 1-5", "timezone": "Europe/Berlin"}
    if kind == 7:
        return {"type": "custom", "pattern": "1010100", "time": t}
    return "1111100"


def vm(i):
    return {
        "enabled": i % 50 != 0,
        "schedule": schedule(i),
        "backup_type": {
            "incremental_enabled": i % 3 != 0,
            "full_backup_frequency": ["daily", "weekly", "biweekly", "monthly", "never"][i % 5],
            "full_backup_day": WEEKDAYS[i % 7],
        },
        "retention": {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 3 + i % 3, "max_backup_age_days": 90 + i % 300},
        "auto_restore": i % 10 == 0,
    }


def policy(n):
    return {
        "source_ovirt_url": "https://engine.prod.example.com/ovirt-engine/api",
        "source_ovirt_user": "backup@internal",
        "source_ovirt_password_file": "/etc/ovbackup/secrets/source.password",
        "source_ovirt_cert_path": "/etc/ovbackup/certs/prod-ca.pem",
        "target_ovirt_url": "https://engine.dr.example.com/ovirt-engine/api",
        "target_ovirt_user": "restore@internal",
        "target_ovirt_password_file": "/etc/ovbackup/secrets/target.password",
        "target_ovirt_cert_path": "/etc/ovbackup/certs/dr-ca.pem",
        "backup_directory": "/backup",
        "backup_settings": {"incremental_enabled": True, "max_incremental_chain_length": 10,
                            "force_full_backup_days": 14, "default_backup_time": "02:00"},
        "restore_settings": {"target_cluster_name": "DR", "target_storage_domain_name": "dr-data",
                             "disk_interface": "virtio_scsi", "timeout_minutes": 60},
        "vms_config": {f"vm-{i:05d}": vm(i) for i in range(n)},
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    json.dump(policy(count), sys.stdout, indent=2)
    sys.stdout.write("\n")
