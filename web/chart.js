// A small SVG line chart for the dashboard: one or more series over shared x labels, a
// y axis with round tick values, and a tooltip that follows the pointer.

import { formatNumber, h, svg } from './dom.js';

const HEIGHT = 220;
const MARGIN = { top: 12, right: 16, bottom: 28, left: 52 };
const Y_TICKS = 4;
const MAX_X_LABELS = 7;

// Returns the smallest "round" number (1, 2 or 5 times a power of ten) times Y_TICKS that
// is at least max, so every tick label is a round number.
function niceMax(max) {
    if (max <= 0) {
        return Y_TICKS;
    }
    const rough = max / Y_TICKS;
    const power = 10 ** Math.floor(Math.log10(rough));
    for (const step of [1, 2, 5, 10]) {
        if (step * power >= rough) {
            return Math.max(Y_TICKS, Math.ceil(step * power) * Y_TICKS);
        }
    }
    return max;
}

function pathFor(values, x, y) {
    return values.map((v, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join('');
}

function drawAxes(group, width, yMax, y) {
    for (let i = 0; i <= Y_TICKS; i++) {
        const value = (yMax / Y_TICKS) * i;
        const ty = y(value);
        group.append(svg('line', {
            class: 'grid-line', x1: MARGIN.left, x2: width - MARGIN.right, y1: ty, y2: ty,
        }));
        group.append(svg('text', {
            class: 'axis-label', x: MARGIN.left - 8, y: ty + 4, 'text-anchor': 'end',
        }, formatNumber(value)));
    }
}

function drawXLabels(group, labels, x) {
    const count = labels.length;
    if (count === 0) {
        return;
    }
    const step = Math.max(1, Math.ceil(count / MAX_X_LABELS));
    for (let i = 0; i < count; i += step) {
        const anchor = i === 0 ? 'start' : 'middle';
        group.append(svg('text', {
            class: 'axis-label', x: x(i), y: HEIGHT - 8, 'text-anchor': anchor,
        }, labels[i]));
    }
}

function attachTooltip(container, chartSvg, data, x, width) {
    const tooltip = h('div', { class: 'chart-tooltip', hidden: true });
    const line = svg('line', {
        class: 'hover-line', y1: MARGIN.top, y2: HEIGHT - MARGIN.bottom, visibility: 'hidden',
    });
    chartSvg.append(line);
    container.append(tooltip);
    const count = data.labels.length;
    chartSvg.addEventListener('pointermove', (event) => {
        const box = chartSvg.getBoundingClientRect();
        const px = ((event.clientX - box.left) / box.width) * width;
        const span = count > 1 ? (x(count - 1) - x(0)) / (count - 1) : 1;
        const index = Math.min(count - 1, Math.max(0, Math.round((px - x(0)) / span)));
        line.setAttribute('x1', x(index));
        line.setAttribute('x2', x(index));
        line.setAttribute('visibility', 'visible');
        tooltip.replaceChildren(h('strong', null, data.labels[index]),
            ...data.series.map((s) => h('div', null, `${s.name}: ${formatNumber(s.values[index])}`)));
        tooltip.hidden = false;
        const left = Math.min(box.width - tooltip.offsetWidth - 4, (x(index) / width) * box.width + 12);
        tooltip.style.left = `${Math.max(0, left)}px`;
        tooltip.style.top = `${MARGIN.top}px`;
    });
    chartSvg.addEventListener('pointerleave', () => {
        line.setAttribute('visibility', 'hidden');
        tooltip.hidden = true;
    });
}

// Draws data into container, replacing what was there. data: { labels: [string],
// series: [{ name, className, values: [number] }], description, emptyText }.
// The description becomes the chart's accessible name.
export function drawLineChart(container, data) {
    const width = Math.max(240, Math.round(container.clientWidth || 640));
    const count = data.labels.length;
    const allValues = data.series.flatMap((s) => s.values);
    const yMax = niceMax(Math.max(0, ...allValues));
    const plotWidth = width - MARGIN.left - MARGIN.right;
    const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
    const x = (i) => MARGIN.left + (count > 1 ? (plotWidth * i) / (count - 1) : plotWidth / 2);
    const y = (v) => MARGIN.top + plotHeight - (plotHeight * v) / yMax;

    const chartSvg = svg('svg', {
        viewBox: `0 0 ${width} ${HEIGHT}`, role: 'img', 'aria-label': data.description,
        preserveAspectRatio: 'none',
    });
    const axes = svg('g');
    chartSvg.append(axes);
    drawAxes(axes, width, yMax, y);
    drawXLabels(axes, data.labels, x);

    if (count === 0) {
        chartSvg.append(svg('text', {
            class: 'empty-label', x: width / 2, y: HEIGHT / 2, 'text-anchor': 'middle',
        }, data.emptyText || 'No data yet'));
    }
    for (const series of data.series) {
        if (count === 0) {
            continue;
        }
        const line = pathFor(series.values, x, y);
        const base = y(0).toFixed(1);
        const area = `${line}L${x(count - 1).toFixed(1)},${base}L${x(0).toFixed(1)},${base}Z`;
        chartSvg.append(svg('path', { class: `area ${series.className}`, d: area }));
        chartSvg.append(svg('path', { class: `series ${series.className}`, d: line }));
    }

    container.replaceChildren(chartSvg);
    if (count > 0) {
        attachTooltip(container, chartSvg, data, x, width);
    }
}
