// What a person reads when something goes wrong: one sentence per error code, saying what happened and what to do
// next. Job errors (job.error.code) and API errors (ApiError.code) are both looked up here; the raw text the
// service sent is never shown (it may name internals). tests/web checks that every code the service can store on
// a job (functions/common/errors.py INPUT_ERROR_CODES, the engine's codes) has a sentence here.

const NOTHING_CHARGED = 'No credits were charged.';

/** Job error codes → sentence. Every job that ends without a result costs nothing, so each says so. */
export const JOB_ERROR_MESSAGES = {
  // the photo itself (validation)
  not_an_image: `This file is not a photo. ${NOTHING_CHARGED} Upload a JPEG, PNG, WebP, AVIF, HEIC or TIFF image.`,
  unsupported_format: `This image format is not supported. ${NOTHING_CHARGED} Save the photo as JPEG or PNG and upload it again.`,
  truncated_image: `This photo is damaged or was cut short while copying. ${NOTHING_CHARGED} Export it again from your camera or editor and upload it again.`,
  too_many_pixels: `This photo has more pixels than we accept. ${NOTHING_CHARGED} Resize it to at most 50 megapixels and upload it again.`,
  too_complex: `This file is built in an unusual way that takes too long to read. ${NOTHING_CHARGED} Save it again as an ordinary JPEG or PNG and upload it again.`,
  too_small: `This photo is too small to make a product image from. ${NOTHING_CHARGED} Upload a photo at least 64 pixels on each side (1,000 or more gives the best result).`,
  extreme_aspect_ratio: `This photo is far longer than it is wide (or the other way round). ${NOTHING_CHARGED} Crop it around the garment and upload it again.`,
  empty_file: `The uploaded file was empty. ${NOTHING_CHARGED} Choose the photo again and upload it.`,
  file_too_large: `This photo is larger than the upload limit. ${NOTHING_CHARGED} Save it at a smaller size and upload it again.`,
  upload_missing: `The photo was no longer there when we came to process it. ${NOTHING_CHARGED} Upload it again.`,
  upload_expired: `No photo arrived for this job within a day, so it was closed. ${NOTHING_CHARGED} Upload the photo again.`,
  input_rejected: `This photo could not be used. ${NOTHING_CHARGED} Try another photo of the garment.`,
  invalid_image: `This photo could not be read. ${NOTHING_CHARGED} Save it again as JPEG or PNG and upload it again.`,
  // the engine's refusals (it can tell the picture would not be usable)
  no_garment_found: `We could not find a garment in this photo. ${NOTHING_CHARGED} Reshoot it with the whole garment in the frame on a plain backdrop that contrasts with it.`,
  low_confidence: `We could not cut the garment out cleanly enough to sell with. ${NOTHING_CHARGED} Reshoot it on a plain, evenly lit backdrop that contrasts with the garment, with the whole garment in the frame.`,
  person_in_photo: `Someone is wearing the garment in this photo. ${NOTHING_CHARGED} For a ghost mannequin image, photograph it on a mannequin, on a hanger or laid flat.`,
  inference_rejected: `The image engine could not use this photo. ${NOTHING_CHARGED} Try another photo of the garment.`,
  photo_refused: `The image engine could not use this photo. ${NOTHING_CHARGED} Try another photo of the garment.`,
  // what the service could not do
  insufficient_credits: 'You did not have enough credits for this photo, so it was not processed. Buy credits, then retry it.',
  on_model_unavailable: `On-model images are not available on this service yet. ${NOTHING_CHARGED} Choose Ghost mannequin instead.`,
  mode_not_supported: `This kind of image is not available on this service yet. ${NOTHING_CHARGED} Choose Ghost mannequin instead.`,
  engine_unavailable: `This kind of image is not available on this service yet. ${NOTHING_CHARGED} Choose Ghost mannequin instead.`,
  inference_timeout: `Making the image took too long. ${NOTHING_CHARGED} Retry it; if it happens again, try later.`,
  inference_failed: `Something went wrong on our side while making the image. ${NOTHING_CHARGED} Retry it.`,
  internal_error: `Something went wrong on our side. ${NOTHING_CHARGED} Retry it.`,
  queue_timeout: `The image engine was too busy to start this photo in time. ${NOTHING_CHARGED} Retry it.`,
  hold_expired: `This photo took far longer than it should have, so we stopped it. ${NOTHING_CHARGED} Retry it.`,
  // bulk batches
  manifest_invalid: `This file's line in the batch list (manifest) is not valid. ${NOTHING_CHARGED} Fix the line and drop the file again.`,
  not_in_manifest: `This file is not listed in the batch list (manifest). ${NOTHING_CHARGED} Add it to the list or drop it in another batch.`,
  batch_sealed: `This file arrived after its batch was closed. ${NOTHING_CHARGED} Send it in a new batch.`,
  batch_cancelled: `The batch was cancelled before this photo was processed. ${NOTHING_CHARGED}`,
  cancelled: `This job was cancelled. ${NOTHING_CHARGED}`,
};

/** API error codes (the request itself was refused) → sentence. */
export const API_ERROR_MESSAGES = {
  insufficient_credits: 'You do not have enough credits for this. Buy a credit pack on the Credits page, then try again.',
  on_model_unavailable: 'On-model images are not available on this service yet. Choose Ghost mannequin instead.',
  preset_background: 'That marketplace size needs a different background. Choose the background it asks for, or another size.',
  original_unavailable: 'The original photo of this job is no longer stored. Upload the photo again to make a new image.',
  not_retryable: 'Only a job that failed or was refused can be retried. Use “Make another version” to change a finished image.',
  not_found: 'That item could not be found. It may have been deleted.',
  email_not_verified: 'Confirm your e-mail address first: use the link or code we sent you, then sign in again.',
  unauthorized: 'Your session has ended. Please sign in again.',
  forbidden: 'You are not allowed to do that.',
  api_key_revoked: 'This API key has been revoked. Create a new key on the Account page.',
  too_many_api_keys: 'You have as many API keys as allowed. Revoke one you no longer use, then create a new one.',
  invalid_url: 'That web address cannot be used. Enter a full https:// address that is reachable from the internet.',
  webhook_not_configured: 'No webhook is set. Add a webhook address on the Account page first.',
  pack_not_found: 'That credit pack is no longer offered. Reload the page and choose another pack.',
  payment_provider_error: 'The payment service did not answer. Nothing was charged; try again in a moment.',
  file_too_large: 'This photo is larger than the upload limit. Save it at a smaller size and try again.',
  job_in_progress: 'This photo is still being processed. Wait until it has finished, then try again.',
  job_ended: 'This job has already finished.',
  not_awaiting_upload: 'This job already has its photo.',
  no_result: 'This job has no image to download.',
  batch_closed: 'This batch is closed. Start a new batch.',
  batch_sealed: 'This batch is closed. Start a new batch.',
  batch_finished: 'This batch has finished. Start a new batch.',
  batch_cancelled: 'This batch was cancelled. Start a new batch.',
  throttled: 'Too many requests. Wait a moment and try again.',
  transient: 'The service is busy. Wait a moment and try again.',
  offline: 'You are offline. Reconnect and try again.',
  internal_error: 'Something went wrong on our side. Try again in a moment.',
};

const JOB_FALLBACK = `This photo could not be processed. ${NOTHING_CHARGED} Retry it, or try another photo of the garment.`;
const API_FALLBACK = 'That did not work. Check what you entered and try again.';
const SERVER_FALLBACK = 'Something went wrong on our side. Try again in a moment.';

/** The sentence for a job's error ({code, message}); null when the job has none. */
export function jobErrorText(error) {
  if (!error) return null;
  return JOB_ERROR_MESSAGES[error.code] || JOB_FALLBACK;
}

/**
 * The sentence for an error thrown by the API client or anything else. ApiError carries `code` and `status`;
 * `validation_error` answers keep the client-written message (built from field names the app itself sent).
 */
export function apiErrorText(error) {
  if (!error) return SERVER_FALLBACK;
  const code = error.code;
  if (code && API_ERROR_MESSAGES[code]) return API_ERROR_MESSAGES[code];
  if (code && JOB_ERROR_MESSAGES[code]) return JOB_ERROR_MESSAGES[code];
  if (error.friendly) return error.message; // written by the app itself (network, session, upload messages)
  if (Number(error.status) >= 500) return SERVER_FALLBACK;
  return API_FALLBACK;
}
