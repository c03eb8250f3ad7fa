// A small time-series plot on a canvas: a few coloured lines sampled at a fixed step, each
// scaled to its own maximum with that maximum written in a corner (no axes to read).

export class SeriesPlot {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {Array<{color: string, unit: string, right?: boolean}>} lines
   * @param {number} points  samples kept per line
   */
  constructor(canvas, lines, points) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.lines = lines.map((line) => ({ ...line, values: [] }));
    this.points = points;
  }

  /** Adds one sample per line (NaN leaves a gap) and redraws when the page is visible. */
  push(...values) {
    this.lines.forEach((line, i) => {
      line.values.push(values[i]);
      if (line.values.length > this.points) line.values.shift();
    });
    if (!document.hidden) this.draw();
  }

  draw() {
    const { ctx, canvas } = this;
    // Draw at the size the canvas is shown at, so text and lines stay sharp when CSS stretches it.
    const width = Math.round(canvas.clientWidth * (window.devicePixelRatio || 1));
    const height = Math.round(canvas.clientHeight * (window.devicePixelRatio || 1));
    if (width > 0 && height > 0 && (canvas.width !== width || canvas.height !== height)) {
      canvas.width = width;
      canvas.height = height;
    }
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = 'rgba(255,255,255,0.04)';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (const line of this.lines) this.drawLine(line);
  }

  drawLine({ values, color, unit, right }) {
    const { width, height } = this.canvas;
    const finite = values.filter(Number.isFinite);
    if (finite.length < 2) return;
    const max = Math.max(1, ...finite) * 1.15;
    const step = width / (this.points - 1);
    const offset = this.points - values.length;
    const ctx = this.ctx;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    values.forEach((value, i) => {
      if (!Number.isFinite(value)) {
        drawing = false;
        return;
      }
      const x = (offset + i) * step;
      const y = height - 2 - (value / max) * (height - 4);
      if (drawing) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      drawing = true;
    });
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.font = '10px system-ui, sans-serif';
    const label = `${compactScale(max)} ${unit}`;
    ctx.fillText(label, right ? width - 3 - ctx.measureText(label).width : 3, 11);
  }
}

function compactScale(value) {
  if (value >= 1e9) return `${(value / 1e9).toFixed(1)}G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  return value.toFixed(0);
}
