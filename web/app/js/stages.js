// The one place a photo's stage is worked out. Everything a tile shows about where a photo is (the badge, the
// progress bar and its spoken value) comes from stageOf(upload), so they can never disagree.

/**
 * {id, label, percent, final, tone} for a photo being processed on this page. `upload.status` is the job's status
 * once the job exists, or the page's own 'preparing' / 'uploading' / 'error' before that. `percent` is a number only
 * where a real fraction is known (the upload itself, and 100 when done); between stages the bar is indeterminate
 * rather than stuck at a guess.
 */
export function stageOf(upload) {
  const status = upload?.status;
  switch (status) {
    case 'preparing':
      return { id: 'waiting-to-upload', label: 'Waiting to upload', percent: null, final: false, tone: 'waiting' };
    case 'uploading': {
      const p = Number.isFinite(upload.percent) ? Math.max(0, Math.min(100, Math.round(upload.percent))) : 0;
      return { id: 'uploading', label: `Uploading ${p} %`, percent: p, final: false, tone: 'working' };
    }
    case 'awaiting_upload':
      return { id: 'waiting-to-start', label: 'Waiting to start', percent: null, final: false, tone: 'waiting' };
    case 'queued':
      return { id: 'checking', label: 'Checking the photo', percent: null, final: false, tone: 'working' };
    case 'validated':
      return { id: 'in-line', label: 'Waiting its turn', percent: null, final: false, tone: 'waiting' };
    case 'processing':
      return { id: 'making', label: 'Making the image', percent: null, final: false, tone: 'working' };
    case 'succeeded':
      return { id: 'done', label: 'Done', percent: 100, final: true, tone: 'done' };
    case 'rejected':
      return { id: 'refused', label: 'Refused', percent: null, final: true, tone: 'problem' };
    case 'failed':
      return { id: 'failed', label: 'Failed', percent: null, final: true, tone: 'problem' };
    case 'cancelled':
      return { id: 'cancelled', label: 'Cancelled', percent: null, final: true, tone: 'problem' };
    case 'error':
      return { id: 'not-sent', label: 'Not sent', percent: null, final: true, tone: 'problem' };
    default:
      return { id: 'working', label: 'Working on it', percent: null, final: false, tone: 'waiting' };
  }
}

/** "3 of 10 done, 1 refused, 2 failed" for a list of uploads (null when the list is empty). */
export function batchSummary(uploads) {
  const total = uploads.length;
  if (!total) return null;
  let done = 0;
  let refused = 0;
  let failed = 0;
  for (const upload of uploads) {
    const stage = stageOf(upload);
    if (stage.id === 'done') done += 1;
    else if (stage.id === 'refused') refused += 1;
    else if (stage.final) failed += 1;
  }
  const parts = [`${done} of ${total} done`];
  if (refused) parts.push(`${refused} refused`);
  if (failed) parts.push(`${failed} not processed`);
  const working = total - done - refused - failed;
  if (working) parts.push(`${working} in progress`);
  return { text: `${parts.join(', ')}.`, total, done, refused, failed, working };
}
