"""Downloads an image transfer with the official ovirt-imageio client, as backup_vm.py does.

usage: imageio_download.py URL FILE CAFILE [--incremental --backing FILE]
"""
import argparse

from ovirt_imageio import client

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("filename")
parser.add_argument("cafile")
parser.add_argument("--incremental", action="store_true")
parser.add_argument("--backing")
args = parser.parse_args()

client.download(
    args.url,
    args.filename,
    args.cafile,
    fmt="qcow2",
    incremental=args.incremental,
    backing_file=args.backing,
    backing_format="qcow2" if args.backing else None,
)
