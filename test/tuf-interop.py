"""An independent TUF client (python-tuf's ngclient, vendored in test/vendor/python-tuf) reads a
nestswap registry: refresh from a trusted root, look up a target, download and verify it.
Usage: tuf-interop.py REGISTRY_URL ROOT_JSON WORKDIR TARGET_PATH [TOKEN] -> one JSON line. Target files need a
token that reads the package (metadata does not): TOKEN goes as Authorization: Bearer on every request."""
import hashlib, json, os, shutil, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor", "python-tuf"))
from tuf.ngclient import Updater, RequestsFetcher  # noqa: E402
import tuf  # noqa: E402

url, root, work, target = sys.argv[1:5]
token = sys.argv[5] if len(sys.argv) > 5 else None


class BearerFetcher(RequestsFetcher):
    """python-tuf's fetcher with the registry token on its sessions."""

    def _get_session(self, u):
        s = super()._get_session(u)
        if token:
            s.headers["Authorization"] = f"Bearer {token}"
        return s


meta = os.path.join(work, "metadata")
dl = os.path.join(work, "targets")
os.makedirs(meta, exist_ok=True)
os.makedirs(dl, exist_ok=True)
shutil.copy(root, os.path.join(meta, "root.json"))
try:
    u = Updater(metadata_dir=meta, metadata_base_url=f"{url}/v1/tuf/metadata/", target_base_url=f"{url}/v1/tuf/targets/", target_dir=dl,
                fetcher=BearerFetcher())
    u.refresh()
    info = u.get_targetinfo(target)
    if info is None:
        print(json.dumps({"ok": False, "error": "TargetNotFound", "target": target}))
        sys.exit(3)
    path = u.download_target(info)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print(json.dumps({"ok": True, "client": f"python-tuf {tuf.__version__}", "target": target, "length": info.length, "sha256": digest,
                      "custom": info.custom, "root_version": u._trusted_set.root.signed.version, "targets_version": u._trusted_set.targets.signed.version}))
except Exception as e:  # noqa: BLE001 - the test reads the error class
    print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}))
    sys.exit(2)
