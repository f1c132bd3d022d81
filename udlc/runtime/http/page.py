"""`GET /`: a page to try each served model in a browser. Per model, what its friendly route reads — a form of
its feature columns, a drop zone for a picture or a sound file, a box for a text, a prompt whose continuation
streams in token by token, a button that draws samples — sent by the page's script to that route, and the answer
shown: class probabilities as bars, values as a list, samples as the PNG the route draws. A graph model (its
input is a file of arrays) is listed with its routes.

The page is one HTML string, built once from the files' metadata when the app is built (the models served do not
change while it runs): its style and script are inline, nothing is built or fetched from elsewhere, and its
Content-Security-Policy tells the browser so. Everything taken from a file (names, columns, categories) is
escaped here; the script writes answers with textContent, never as HTML.
"""

from __future__ import annotations

import html
from urllib.parse import quote

from udlc.runtime.generate import Asked
from udlc.runtime.http.models import Served
from udlc.runtime.http.openapi import Column, columns, form_of

# What the browser may do: run the page's own inline script and style, show pictures made from answers (blob:),
# and ask this server; nothing else, from anywhere.
POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src blob:; "
          "connect-src 'self'; base-uri 'none'; form-action 'none'")


def page(models: dict[str, Served]) -> str:
    """The page for the models served, in order."""
    sections = "\n".join(_section(model) for model in models.values())
    count = f"{len(models)} model{'s' if len(models) != 1 else ''}"
    return _PAGE.replace("<!--count-->", count).replace("<!--models-->", sections)


def _e(value: object) -> str:
    """Text (or an attribute's value, quotes included) as HTML shows it."""
    return html.escape(str(value), quote=True)


def _section(model: Served) -> str:
    name = _e(model.name)
    return (f'<section class="model" id="model-{_e(quote(model.name, safe=""))}">\n<h2>{name}</h2>\n'
            f'<p class="about"><code>{_e(model.file.path.name)}</code>: {_e(model.kind.description)}</p>\n'
            f'{_form(model)}\n<div class="answer" aria-live="polite"></div>\n</section>')


def _form(model: Served) -> str:
    """The form that asks the model's friendly route, by what the route reads."""
    form = form_of(model)  # what the route reads: the OpenAPI document (/docs) reads it from the same helper
    if model.route is None or form == "graph":  # a graph is a file of arrays: no form for it here
        where = f'<code>POST {_e(model.route)}</code> (a graph as JSON or an .npz file) or ' if model.route else ""
        return (f'<p class="note">Served at {where}<code>POST /v2/models/{_e(model.name)}/infer</code> '
                '(JSON tensors).</p>')
    # the route relative to the page: a proxy may serve the server under a prefix
    route, reader = _e(quote(model.route.lstrip("/"))), model.reader
    if form == "prompt":  # a language model's tokens stream in as it makes them
        asked = Asked()
        return (f'<form data-route="{route}" data-takes="prompt"><label>prompt <textarea name="prompt" rows="3" '
                f'required></textarea></label><label>new tokens <input name="max_new_tokens" type="number" min="1" '
                f'value="{asked.max_new_tokens}"></label><label>temperature <input name="temperature" type="number" '
                f'min="0" step="0.1" value="{asked.temperature:g}"></label><button>Generate</button></form>')
    if form == "draws":
        label = ""
        if reader.classes:  # a class-conditional diffusion model: a class, or every class in turn
            options = "".join(f'<option value="{i}">{i}</option>' for i in range(reader.classes))
            label = (f'<label>class <select name="class"><option value="">each in turn</option>{options}'
                     '</select></label>')
        return (f'<form data-route="{route}" data-takes="draws"><label>samples <input name="n" type="number" '
                f'min="1" value="16"></label><label>seed <input name="seed" type="number" min="0" value="0"></label>'
                f'{label}<button>Draw samples</button></form>')
    if form == "texts":  # one box per column the model reads: a sentence pair's two
        boxes = "".join(f'<label>{_e(column)} <textarea name="{name}" rows="3" required></textarea></label>'
                        for name, column in zip(("text", "text2"), reader.columns))
        return f'<form data-route="{route}" data-takes="texts">{boxes}<button>Classify</button></form>'
    if form == "picture":
        return (f'<form data-route="{route}" data-takes="picture"><label class="drop">'
                '<input name="picture" type="file" accept="image/*"><img class="preview" alt="">'
                '<span>Drop a picture here, or choose one</span></label><button>Predict</button></form>')
    if form == "sound":  # the picture's drop zone, without its preview
        return (f'<form data-route="{route}" data-takes="sound"><label class="drop">'
                '<input name="sound" type="file" accept="audio/*,.wav,.flac,.ogg">'
                '<span>Drop a sound file (WAV, FLAC, OGG) here, or choose one</span></label>'
                '<button>Predict</button></form>')
    if form == "rows":  # one field per column, a categorical one a choice of its categories
        fields = "".join(_field(column) for column in columns(model))
        return f'<form data-route="{route}" data-takes="rows"><div class="fields">{fields}</div>' \
               '<button>Predict</button></form>'
    # a model of a built-in data set's rows or arrays: its values by position, as a CSV row gives them
    return (f'<form data-route="{route}" data-takes="values"><label>{reader.per_sample} values, separated by '
            'commas <textarea name="values" rows="3" required></textarea></label><button>Predict</button></form>')


def _field(column: Column) -> str:
    if column.categories is not None:
        options = "".join(f'<option value="{_e(c)}">{_e(c)}</option>' for c in column.categories)
        control = f'<select data-column="{_e(column.name)}">{options}</select>'
    elif column.fillable:  # trained with data.missing: mean — an empty cell is filled as training filled it
        control = f'<input data-column="{_e(column.name)}" inputmode="decimal" placeholder="empty: the mean">'
    else:
        control = f'<input data-column="{_e(column.name)}" inputmode="decimal" required>'
    return f'<label>{_e(column.name)} {control}</label>'


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>udlc serve</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; max-width: 56rem; margin: 1.5rem auto; padding: 0 1rem;
       color: #1c2430; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin: 0 0 .2rem; }
code { background: #eef1f5; padding: 0 .25rem; border-radius: 3px; }
.model { border: 1px solid #d6dbe2; border-radius: 8px; padding: 1rem; margin: 1rem 0; }
.about, .note { color: #4a5565; margin: 0 0 .7rem; }
form { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; }
.fields { display: flex; flex-wrap: wrap; gap: .6rem; }
label { display: flex; flex-direction: column; font-size: .85rem; color: #4a5565; }
input, select, textarea, button { font: inherit; padding: .3rem .45rem; border: 1px solid #b8c0cc; border-radius: 5px; }
textarea { min-width: 24rem; }
button { background: #2458c6; color: white; border-color: #2458c6; cursor: pointer; }
.drop { border: 2px dashed #9aa6b6; border-radius: 8px; padding: 1rem; min-width: 16rem; align-items: center;
        cursor: pointer; }
.drop.over { border-color: #2458c6; background: #eef3fd; }
.preview { max-height: 4rem; image-rendering: pixelated; }
.preview:not([src]) { display: none; }
.answer:not(:empty) { margin-top: .8rem; }
.prediction { font-size: 1.1rem; font-weight: 600; }
.bar { display: grid; grid-template-columns: 9rem 1fr 4rem; gap: .5rem; align-items: center; margin: .15rem 0; }
.bar .track { background: #eef1f5; height: .9rem; border-radius: 3px; overflow: hidden; }
.bar .fill { background: #8aa4d6; height: 100%; }
.bar.top .fill { background: #2458c6; }
.bar .p { text-align: right; font-variant-numeric: tabular-nums; }
.answer img { max-width: 100%; image-rendering: pixelated; border: 1px solid #d6dbe2; }
.error { color: #b42318; white-space: pre-wrap; }
.generated { white-space: pre-wrap; background: #f6f8fa; padding: .6rem; border-radius: 5px; margin: 0; }
</style>
</head>
<body>
<h1>udlc serve</h1>
<p class="note"><!--count--> served here, each answered as <code>udlc predict</code>, <code>generate</code> or
<code>sample</code> answers it. The routes: <a href="v1/models">v1/models</a>, each with its schema and a curl
line at <a href="docs">docs</a> (<a href="openapi.json">openapi.json</a>); metrics at <a href="metrics">metrics</a>.</p>
<!--models-->
<script>
"use strict";
// Builds an element holding text: answers are written as text, never parsed as HTML.
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
const asJson = body => ({headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
const whole = (form, name) => parseInt(form.querySelector(`[name=${name}]`).value, 10);

// The request a form makes of its model's route, by what the route reads.
function request(form) {
  const takes = form.dataset.takes, field = name => form.querySelector(`[name=${name}]`);
  if (takes === "picture" || takes === "sound") {
    const file = field(takes).files[0];
    if (!file) throw new Error(takes === "sound" ? "choose a sound file first" : "choose a picture first");
    const data = new FormData();
    data.append(takes, file);
    return {body: data};
  }
  if (takes === "texts") {
    const text = field("text").value, second = field("text2");
    return asJson({texts: [second ? [text, second.value] : text]});
  }
  if (takes === "prompt") {
    const asked = {prompt: field("prompt").value, max_new_tokens: whole(form, "max_new_tokens"),
                   temperature: parseFloat(field("temperature").value)};
    return {...asJson(asked), headers: {"Content-Type": "application/json", "Accept": "text/event-stream"}};
  }
  if (takes === "values") return asJson({rows: [field("values").value.split(/[\\s,;]+/).filter(v => v !== "")]});
  if (takes === "rows") {  // cells as the CSV would hold them; an empty one null, filled as training filled it
    const row = {};
    for (const f of form.querySelectorAll("[data-column]")) row[f.dataset.column] = f.value.trim() || null;
    return asJson({rows: [row]});
  }
  const asked = {n: whole(form, "n"), seed: whole(form, "seed")};
  const label = field("class");
  if (label && label.value !== "") asked.class = parseInt(label.value, 10);
  return {...asJson(asked), headers: {"Content-Type": "application/json", "Accept": "image/png"}};
}

// An answer of the friendly route: a class with its probabilities as bars, or values by name.
function show(box, answer) {
  if (answer.probabilities) {
    box.append(el("div", "prediction", answer.prediction));
    for (const [name, p] of Object.entries(answer.probabilities)) {
      const bar = el("div", name === answer.prediction ? "bar top" : "bar"), track = el("div", "track");
      const fill = el("div", "fill");
      fill.style.width = `${(100 * (p || 0)).toFixed(1)}%`;
      track.append(fill);
      bar.append(el("span", "class", name), track, el("span", "p", p === null ? "–" : p.toFixed(3)));
      box.append(bar);
    }
    return;
  }
  const values = Object.entries(answer).filter(([k]) => k !== "file");
  const list = el("dl", "values");
  for (const [name, v] of values.slice(0, 32)) list.append(el("dt", "", name), el("dd", "", String(v)));
  box.append(list);
  if (values.length > 32) box.append(el("p", "note", `… and ${values.length - 32} more values`));
}

// A generate route's answer: server-sent events read as they come (a piece of text per token, then `done` with
// the whole text, or `error`), or JSON {"text"} for a model that answers at once.
async function generated(box, reply, prompt) {
  const out = el("pre", "generated", prompt);
  box.append(out);
  if (!reply.headers.get("content-type").startsWith("text/event-stream")) {
    out.textContent = (await reply.json()).text;
    return;
  }
  const reader = reply.body.getReader(), decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const {value, done} = await reader.read();
    buffered += decoder.decode(value || new Uint8Array(), {stream: !done});
    const events = buffered.split("\\n\\n");
    buffered = done ? "" : events.pop();  // an event not yet whole waits for the rest
    for (const event of events) {
      const name = (event.match(/^event: (.*)$/m) || [null, "message"])[1];
      const data = event.match(/^data: (.*)$/m);
      if (!data) continue;
      const said = JSON.parse(data[1]);
      if (name === "error") throw new Error(said.error);
      if (name === "done") {
        out.textContent = said.text;
        box.append(el("p", "note done", `${said.tokens} tokens in ${said.seconds} s`));
      } else {
        out.textContent += said.text;
      }
    }
    if (done) return;
  }
}

async function ask(form) {
  const box = form.parentElement.querySelector(".answer"), button = form.querySelector("button");
  box.replaceChildren(el("p", "note", "…"));
  button.disabled = true;
  try {
    const reply = await fetch(form.dataset.route, {method: "POST", ...request(form)});
    if (!reply.ok) {
      const e = await reply.json().catch(() => ({}));
      throw new Error(e.error || `${reply.status} ${reply.statusText}`);
    }
    box.replaceChildren();
    if (form.dataset.takes === "prompt") {
      await generated(box, reply, form.querySelector("[name=prompt]").value);
    } else if (form.dataset.takes === "draws") {
      const picture = el("img");
      picture.alt = "samples";
      picture.src = URL.createObjectURL(await reply.blob());
      box.append(picture);
    } else {
      const answers = (await reply.json()).answers;
      for (const answer of answers.slice(0, 20)) show(box, answer);
      if (answers.length > 20) box.append(el("p", "note", `… and ${answers.length - 20} more answers`));
    }
  } catch (e) {
    box.replaceChildren(el("p", "error", e.message));
  } finally {
    button.disabled = false;
  }
}

for (const form of document.querySelectorAll("form[data-route]")) {
  form.addEventListener("submit", event => { event.preventDefault(); ask(form); });
}
// A picture or sound file is asked about as soon as it is chosen or dropped; the drop zone shows a picture.
for (const zone of document.querySelectorAll(".drop")) {
  const input = zone.querySelector("input"), preview = zone.querySelector(".preview");
  input.addEventListener("change", () => {
    if (!input.files.length) return;
    if (preview) {
      if (preview.src) URL.revokeObjectURL(preview.src);
      preview.src = URL.createObjectURL(input.files[0]);
    }
    zone.closest("form").requestSubmit();
  });
  zone.addEventListener("dragover", event => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", event => {
    event.preventDefault();
    zone.classList.remove("over");
    input.files = event.dataTransfer.files;
    input.dispatchEvent(new Event("change"));
  });
}
</script>
</body>
</html>
"""
