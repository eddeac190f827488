// disco web page: copy buttons. Everything works without this script.
"use strict";
document.addEventListener("click", function (ev) {
  var b = ev.target.closest && ev.target.closest("button.copy");
  if (!b) return;
  var text = b.getAttribute("data-copy") || "";
  var done = function () {
    b.textContent = "Copied";
    setTimeout(function () { b.textContent = "Copy"; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () {});
  } else {
    var code = b.parentNode.querySelector("code");
    var r = document.createRange();
    r.selectNodeContents(code);
    var s = window.getSelection();
    s.removeAllRanges();
    s.addRange(r);
    try { document.execCommand("copy"); done(); } catch (e) { /* selected for manual copy */ }
  }
});
