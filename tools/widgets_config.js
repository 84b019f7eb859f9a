// Loaded between require.js and the widget manager (embed-amd.js); copied into the site's
// offline/ folder by tools/fetch_assets.py.
(function () {
  // 1. The manager loads its fonts relative to its own AMD module: map that module to this site.
  var base = document.currentScript.src.replace(/[^/]*$/, "");
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": base + "html-manager/dist" } });
  // 2. The manager typesets widget labels with MathJax 2's `Hub.Queue`; the book runs MathJax 3.
  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (!mj || mj.Hub) return;
    mj.Hub = {
      Queue: function (command) {
        var el = command[2];
        Promise.resolve(mj.startup && mj.startup.promise).then(function () {
          return mj.typesetPromise ? mj.typesetPromise([el]) : null;
        });
      },
    };
  });
})();
