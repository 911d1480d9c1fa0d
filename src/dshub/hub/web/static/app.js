// Copy buttons: put the text of the <pre> a button names on the clipboard.
// Pages work without this file; it only adds the buttons' behaviour.
(function () {
  "use strict";

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  function flash(button, label) {
    var old = button.dataset.label || button.textContent;
    button.dataset.label = old;
    button.textContent = label;
    button.classList.add("done");
    window.setTimeout(function () {
      button.textContent = old;
      button.classList.remove("done");
    }, 1500);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy-target]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source) { return; }
    var text = source.textContent;
    copy(text).then(function () {
      button.dataset.copied = text;
      flash(button, "Copied");
    }, function () {
      flash(button, "Select and copy");
    });
  });

  // The sort and scope menus of the list apply at once when scripts run.
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches("form.search select")) { el.form.submit(); }
  });
})();
