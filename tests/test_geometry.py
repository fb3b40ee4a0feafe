"""descnet.geometry: cameras and their readers, SuperGlue's pose protocol, alignment to ground truth.

Known answers: synthetic scenes with exact cameras (noise-free matches give zero error and AUC 100, a known
perturbation gives exactly its angle), AUC of a hand-computed error list, epipolar errors against epipolar lines
built by projecting 3D points, EXIF rotations checked on a real np.rot90, the Strecha cameras against real SIFT
matches, and the alignment recovering a known similarity despite outliers.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import shared_file
from descnet.geometry.alignment import camera_errors, relative_pose_maa, robust_similarity, umeyama
from descnet.geometry.cameras import (Camera, PosePair, inplane_rotation, read_pairs_with_pose, read_strecha_camera,
                                      read_strecha_scene, relative_pose, rotate_intrinsics, rotate_pair,
                                      scale_intrinsics)
from descnet.geometry.pose import (PRECISION_THRESHOLD, epipolar_errors, estimate_relative_pose, evaluate_pair_pose,
                                   normalize_points, pose_auc, pose_errors, rotation_angle)

K = np.array([[800.0, 0, 319.5], [0, 810.0, 239.5], [0, 0, 1]])


def _look_at(centre, target=(0.0, 0.0, 8.0)):
    z = np.asarray(target, float) - centre
    z /= np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def _camera(centre) -> Camera:
    centre = np.asarray(centre, float)
    return Camera(K=K, R=_look_at(centre), C=centre, width=640, height=480)


def _rot(axis, degrees):
    return cv2.Rodrigues(np.asarray(axis, float) / np.linalg.norm(axis) * np.deg2rad(degrees))[0]


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    points = rng.uniform([-3, -2, 6], [3, 2, 10], (400, 3))
    cameras = [_camera(c) for c in ([0, 0, 0], [1.0, 0.2, 0.3], [-0.8, 0.4, 0.5], [0.3, -0.5, 1.2], [1.5, 0.6, -0.4])]
    return points, cameras


def test_noise_free_matches_give_zero_error_and_auc_100_on_every_pair(scene):
    points, cameras = scene
    errors = []
    for i in range(len(cameras)):
        for j in range(i + 1, len(cameras)):
            p0, p1 = cameras[i].project(points), cameras[j].project(points)
            T = relative_pose(cameras[i], cameras[j])
            assert np.abs(epipolar_errors(p0, p1, T, K, K)).max() < 1e-20
            result = evaluate_pair_pose(p0, p1, np.c_[np.arange(400), np.arange(400)], K, K, T)
            assert result.precision == 1.0 and result.matching_score == 1.0 and result.inliers == 400
            errors.append(result.error)
            magsac = evaluate_pair_pose(p0, p1, np.c_[np.arange(400), np.arange(400)], K, K, T, method="magsac")
            assert magsac.error < 1e-3
    assert max(errors) < 1e-3
    assert pose_auc(errors) == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)


def test_relative_pose_composes_world_to_camera_transforms(scene):
    points, (c0, c1, *_) = scene
    T = relative_pose(c0, c1)
    in0 = (points - c0.C) @ c0.R.T
    in1 = (points - c1.C) @ c1.R.T
    np.testing.assert_allclose(in0 @ T[:3, :3].T + T[:3, 3], in1, atol=1e-12)


def test_a_known_perturbation_gives_exactly_its_angle(scene):
    _, (c0, c1, *_) = scene
    T = relative_pose(c0, c1)
    R, t = T[:3, :3], T[:3, 3]
    error_R, error_t = pose_errors(T, _rot([0.3, 1, 0.2], 3.0) @ R, t)
    assert error_R == pytest.approx(3.0, abs=1e-9) and error_t == pytest.approx(0.0, abs=1e-6)
    error_R, error_t = pose_errors(T, R, _rot(np.cross(t, [0, 0, 1]), 7.0) @ t * 5)
    assert error_R == pytest.approx(0.0, abs=1e-6) and error_t == pytest.approx(7.0, abs=1e-9)
    assert pose_errors(T, R, -t)[1] == pytest.approx(0.0, abs=1e-6)  # E's sign ambiguity: folded
    assert pose_errors(T, R, _rot(np.cross(t, [0, 0, 1]), 100.0) @ t)[1] == pytest.approx(80.0, abs=1e-9)
    assert rotation_angle(np.eye(3), _rot([1, 0, 0], 179.0)) == pytest.approx(179.0)


def test_auc_of_a_hand_computed_error_list():
    # errors 0, 1, 3, inf -> recall steps 1/4 .. 3/4; trapezoids from (0, 0):
    # @5: 0 + 1*(.25+.5)/2 + 2*(.5+.75)/2 + 2*(.75+.75)/2 = 3.125 -> 0.625
    # @10: 3.125 + 5*.75 = 6.875 -> 0.6875; @20: 6.875 + 10*.75 = 14.375 -> 0.71875
    assert pose_auc([3.0, np.inf, 0.0, 1.0]) == pytest.approx([0.625, 0.6875, 0.71875], abs=1e-12)
    # one pair at 2 degrees: the curve rises from (0, 0) to (2, 1): area 1, then 3 (t = 5): 4 / 5
    assert pose_auc([2.0], [5]) == pytest.approx([0.8])
    assert pose_auc([np.inf, np.inf]) == [0.0, 0.0, 0.0]
    assert pose_auc([]) == [0.0, 0.0, 0.0]


def test_epipolar_errors_are_squared_distances_to_projected_epipolar_lines(scene):
    points, (c0, c1, *_) = scene
    rng = np.random.default_rng(1)
    p0 = c0.project(points[:50])
    p1 = c1.project(points[:50]) + rng.normal(0, 2.0, (50, 2))  # pixels off their epipolar lines
    T = relative_pose(c0, c1)
    # epipolar line of p0 in image 1: through the projections of two points on its ray (depths 2 and 20)
    n0, n1 = normalize_points(p0, K), normalize_points(p1, K)
    expected = []
    for a, b in zip(n0, n1):
        ray = np.r_[a, 1.0]
        ends = [T[:3, :3] @ (ray * d) + T[:3, 3] for d in (2.0, 20.0)]
        line1 = np.cross(*[e / e[2] for e in ends])
        back = [T[:3, :3].T @ (np.r_[b, 1.0] * d - T[:3, 3]) for d in (2.0, 20.0)]
        line0 = np.cross(*[e / e[2] for e in back])
        d1 = np.dot(line1, np.r_[b, 1.0]) / np.hypot(*line1[:2])
        d0 = np.dot(line0, ray) / np.hypot(*line0[:2])
        expected.append(d0 ** 2 + d1 ** 2)
    np.testing.assert_allclose(epipolar_errors(p0, p1, T, K, K), expected, rtol=1e-6)
    assert epipolar_errors(np.zeros((0, 2)), np.zeros((0, 2)), T, K, K).shape == (0,)


def test_degenerate_input_is_a_failed_pair_not_a_crash(scene):
    _, (c0, c1, *_) = scene
    T = relative_pose(c0, c1)
    assert estimate_relative_pose(np.zeros((4, 2)), np.zeros((4, 2)), K, K) is None  # fewer than 5
    same = np.tile([[100.0, 100.0]], (30, 1))
    pose = estimate_relative_pose(same, same, K, K)  # one point 30 times: must not raise
    assert pose is None or np.isfinite(pose.R).all()
    result = evaluate_pair_pose(np.zeros((10, 2)), np.zeros((10, 2)), np.zeros((0, 2), int), K, K, T)
    assert np.isinf(result.error) and result.precision == 0.0 and result.matches == 0


def test_exif_rotation_turns_intrinsics_and_pose_as_np_rot90(scene):
    points, (c0, c1, *_) = scene
    w, h = 640, 480
    for rot in range(4):
        # where np.rot90 moves each integer pixel of a w x h image
        index = np.arange(w * h).reshape(h, w)
        turned = np.rot90(index, k=rot)
        yx = np.argwhere(turned >= 0)
        moved = np.empty((w * h, 2))
        moved[turned[yx[:, 0], yx[:, 1]]] = yx[:, ::-1]
        K_rot = rotate_intrinsics(K, rot, w, h)
        R_rot = inplane_rotation(rot)
        # a point projecting onto integer pixel (x, y) must project onto moved[(x, y)] with the turned camera
        for x, y in [(0, 0), (17, 400), (639, 479), (320, 10)]:
            ray = np.linalg.inv(K) @ [x, y, 1.0]
            p = K_rot @ (R_rot @ ray)
            np.testing.assert_allclose(p[:2] / p[2], moved[y * w + x], atol=1e-9)
    # both images turned: the matches stay on the turned pose's epipolar lines
    pair = PosePair("a", "b", 1, 3, K, K, relative_pose(c0, c1))
    K0, K1, T = rotate_pair(pair, ((w, h), (w, h)))
    p0, p1 = c0.project(points), c1.project(points)
    q0 = np.c_[p0[:, 1], w - 1 - p0[:, 0]]  # rot 1: (x, y) -> (y, w-1-x)
    q1 = np.c_[h - 1 - p1[:, 1], p1[:, 0]]  # rot 3: (x, y) -> (h-1-y, x)
    assert epipolar_errors(q0, q1, T, K0, K1).max() < 1e-20
    result = evaluate_pair_pose(q0, q1, np.c_[np.arange(len(q0)), np.arange(len(q0))], K0, K1, T)
    assert result.error < 1e-3


def test_scale_intrinsics_follows_superglue():
    np.testing.assert_allclose(scale_intrinsics(K, (640, 480), (320, 240)),
                               [[400.0, 0, 159.75], [0, 405.0, 119.75], [0, 0, 1]])


def test_strecha_reader_and_its_errors_name_file_and_line(tmp_path, shared_data):
    camera = read_strecha_camera(shared_file(shared_data, "strecha/fountain-P11/gt_dense_cameras/0005.jpg.camera"))
    np.testing.assert_allclose(camera.C, [-14.1604, -3.32084, 0.0862032])
    assert (camera.width, camera.height) == (3072, 2048) and camera.K[0, 0] == 2759.48
    np.testing.assert_allclose(camera.R[0], [0.962742, -0.270399, 0.00344709])  # the file's R transposed
    scene = read_strecha_scene(shared_data / "strecha" / "fountain-P11" / "images")
    assert list(scene) == [f"{i:04d}.jpg" for i in range(11)]

    good = (shared_data / "strecha/fountain-P11/gt_dense_cameras/0005.jpg.camera").read_text().splitlines()
    bad = tmp_path / "bad.camera"
    bad.write_text("\n".join(good[:3] + ["0 0 x"] + good[4:]))
    with pytest.raises(ValueError, match=rf"{bad}:4: 'x' is not a number"):
        read_strecha_camera(bad)
    bad.write_text("\n".join(good[:-1]))
    with pytest.raises(ValueError, match=rf"{bad}: a Strecha camera has 26 numbers .* has 24"):
        read_strecha_camera(bad)
    bad.write_text("\n".join(good[:4] + ["1 0 0", "0 1 0", "0 1 0"] + good[7:]))
    with pytest.raises(ValueError, match=rf"{bad}:5: the rotation is not a rotation matrix"):
        read_strecha_camera(bad)


def test_pairs_reader_on_the_shared_scannet_file_and_its_errors(tmp_path, shared_data):
    path = shared_file(shared_data, "scannet-sample/scannet_sample_pairs_with_gt.txt")
    pairs = read_pairs_with_pose(path)
    assert len(pairs) == 15 and all((p.rot0, p.rot1) == (0, 0) for p in pairs)
    first = pairs[0]
    assert (first.name0, first.name1) == ("scene0711_00_frame-001680.jpg", "scene0711_00_frame-001995.jpg")
    np.testing.assert_allclose(first.K0, [[1163.45, 0, 653.626], [0, 1164.79, 481.6], [0, 0, 1]])
    np.testing.assert_allclose(first.T_0to1[0], [0.78593, -0.35128, 0.50884, -1.51061])
    lines = path.read_text().splitlines()
    bad = tmp_path / "pairs.txt"
    bad.write_text(lines[0] + "\n" + " ".join(lines[1].split()[:-1]) + "\n")
    with pytest.raises(ValueError, match=rf"{bad}:2: 37 fields; a pair with ground truth has 38"):
        read_pairs_with_pose(bad)
    fields = lines[1].split()
    bad.write_text(lines[0] + "\n\n" + " ".join(fields[:2] + ["5"] + fields[3:]) + "\n")
    with pytest.raises(ValueError, match=rf"{bad}:3: the rotations 5 0 must be quarter turns 0-3"):
        read_pairs_with_pose(bad)
    bad.write_text(" ".join(fields[:10] + ["nan?"] + fields[11:]) + "\n")
    with pytest.raises(ValueError, match=rf"{bad}:1: 'nan\?' is not a number"):
        read_pairs_with_pose(bad)


def test_strecha_cameras_agree_with_real_sift_matches(shared_data):
    """fountain 5-6: SIFT matches (quarter resolution, ratio 0.8, scaled back) lie at a median ~0.33 px from the
    epipolar lines of the ground-truth cameras (SOURCES.md)."""
    root = shared_data / "strecha" / "fountain-P11"
    shared_file(shared_data, "strecha/fountain-P11/images/0005.jpg")
    cameras = read_strecha_scene(root)
    sift = cv2.SIFT_create()
    found = []
    for name in ("0005.jpg", "0006.jpg"):
        image = cv2.imread(str(root / "images" / name), cv2.IMREAD_GRAYSCALE)
        small = cv2.resize(image, (image.shape[1] // 4, image.shape[0] // 4), interpolation=cv2.INTER_AREA)
        found.append(sift.detectAndCompute(small, None))
    (k0, d0), (k1, d1) = found
    knn = cv2.BFMatcher().knnMatch(d0, d1, k=2)
    good = [m for m, n in knn if m.distance < 0.8 * n.distance]
    p0 = (np.array([k0[m.queryIdx].pt for m in good]) + 0.5) * 4 - 0.5  # pixel centres at integers
    p1 = (np.array([k1[m.trainIdx].pt for m in good]) + 0.5) * 4 - 0.5
    c0, c1 = cameras["0005.jpg"], cameras["0006.jpg"]
    T = relative_pose(c0, c1)
    E = np.array([[0, -T[2, 3], T[1, 3]], [T[2, 3], 0, -T[0, 3]], [-T[1, 3], T[0, 3], 0]]) @ T[:3, :3]
    F = np.linalg.inv(c1.K).T @ E @ np.linalg.inv(c0.K)
    lines = np.c_[p0, np.ones(len(p0))] @ F.T
    distance = np.abs(np.sum(lines * np.c_[p1, np.ones(len(p1))], 1)) / np.hypot(lines[:, 0], lines[:, 1])
    assert len(good) > 500
    assert np.median(distance) < 0.4 and (distance < 4).mean() > 0.85  # measured: 0.32 px, 92%, 792 matches


def test_alignment_recovers_a_known_similarity_despite_outliers():
    rng = np.random.default_rng(3)
    truth = {f"{i:02d}": _camera(c) for i, c in enumerate(rng.normal(0, 2, (12, 3)))}
    scale, R, t = 0.37, _rot([1, 2, 3], 40.0), np.array([5.0, -1.0, 2.0])
    # the reconstruction's world: X_rec = (R^T (X - t)) / scale; two cameras badly placed (outliers)
    estimated = {}
    for k, (name, cam) in enumerate(truth.items()):
        centre = R.T @ (cam.C - t) / scale
        if k in (3, 7):
            centre = centre + 4.0
        estimated[name] = Camera(K, cam.R @ R, centre, 640, 480)
    names = sorted(truth)
    sim, inliers = robust_similarity(np.array([estimated[n].C for n in names]), np.array([truth[n].C for n in names]))
    assert sim.scale == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(sim.R, R, atol=1e-9)
    np.testing.assert_allclose(sim.t, t, atol=1e-9)
    assert np.flatnonzero(~inliers).tolist() == [3, 7]
    plain = umeyama(np.array([estimated[n].C for n in names]), np.array([truth[n].C for n in names]))
    assert abs(plain.scale - scale) > 0.01  # least squares alone is pulled by the outliers

    errors = camera_errors(estimated, truth)
    assert (errors.images, errors.registered, errors.alignment_inliers) == (12, 12, 10)
    assert errors.rotation_median == pytest.approx(0.0, abs=1e-6) and errors.rotation_mean < 1e-6
    assert errors.centre_median == pytest.approx(0.0, abs=1e-9)
    assert errors.per_image["03"]["centre_error"] == pytest.approx(np.linalg.norm(R @ np.full(3, 4.0) * scale))
    assert errors.accuracy["1deg/1%"] == pytest.approx(10 / 12)
    # one image not registered: counted in images, not in registered; accuracy over all ground-truth images
    del estimated["00"]
    errors = camera_errors(estimated, truth)
    assert (errors.images, errors.registered) == (12, 11) and errors.accuracy["5deg/5%"] == pytest.approx(9 / 12)
    assert relative_pose_maa(truth, truth) == 1.0
    assert 0 < errors.maa < 1


def test_precision_threshold_is_superglues():
    assert PRECISION_THRESHOLD == 5e-4


def test_a_resized_camera_projects_where_cv2_resize_puts_the_pixel():
    """Camera.resized: pixel centres at integers, as cv2.resize maps them (x' = s x + (s - 1) / 2)."""
    from descnet.geometry.cameras import Camera

    K = np.array([[800.0, 0, 319.5], [0, 790.0, 239.5], [0, 0, 1]])
    cam = Camera(K, np.eye(3), np.zeros(3), 640, 480)
    X = np.array([[0.3, -0.2, 4.0], [-1.0, 0.5, 7.0]])
    small = cam.resized(320, 240)
    expected = 0.5 * cam.project(X) + (0.5 - 1) / 2
    assert np.allclose(small.project(X), expected, atol=1e-12) and (small.width, small.height) == (320, 240)
