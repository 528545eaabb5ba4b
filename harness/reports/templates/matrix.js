(function () {
  var boxes = Array.prototype.slice.call(document.querySelectorAll('input[data-status]'));
  function apply() {
    boxes.forEach(function (box) {
      document.body.classList.toggle('hide-' + box.getAttribute('data-status'), !box.checked);
    });
  }
  boxes.forEach(function (box) { box.addEventListener('change', apply); });
  apply();
  document.body.setAttribute('data-ready', String(document.querySelectorAll('.card').length));
})();
